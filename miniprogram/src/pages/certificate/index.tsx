import { Screen } from '../../components/Screen'

export default function Page() {
  return <Screen title='certificate'>{null}</Screen>
}
