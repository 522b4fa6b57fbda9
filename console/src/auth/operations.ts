// The staff API operations as `/api/v1/me` lists them ("POST /api/v1/staff/cases/{id}/approve"),
// typed from the generated `paths`: a misspelt operation is a type error.
import type { paths } from '../api/schema'

type Method = 'get' | 'put' | 'post' | 'delete' | 'patch'

export type Operation = {
  [P in keyof paths & string]: {
    [M in Method]: [NonNullable<paths[P][M]>] extends [never] ? never : `${Uppercase<M>} ${P}`
  }[Method]
}[keyof paths & string]
