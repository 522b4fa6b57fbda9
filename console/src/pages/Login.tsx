import { useState } from 'react'
import { useLocation, useNavigate } from 'react-router-dom'
import { Button, Card, Form } from 'tdesign-react'
import { useAuth } from '../auth/AuthContext'
import { ProblemAlert, usePageTitle } from '../components/common'
import { TextField } from '../components/fields'
import { zh } from '../i18n/zh'

export function LoginPage({ notice }: { notice?: string }) {
  usePageTitle(zh.login.title)
  const { login } = useAuth()
  const navigate = useNavigate()
  const location = useLocation()
  const [username, setUsername] = useState('')
  const [password, setPassword] = useState('')
  const [problem, setProblem] = useState<string | null>(null)
  const [busy, setBusy] = useState(false)

  async function submit() {
    if (busy) return
    if (!username.trim() || !password) {
      setProblem(zh.login.required)
      return
    }
    setBusy(true)
    setProblem(null)
    const refused = await login(username.trim(), password)
    setBusy(false)
    if (refused) {
      setProblem(refused)
      return
    }
    const from = (location.state as { from?: string } | null)?.from
    navigate(from && from !== '/login' ? from : '/', { replace: true })
  }

  return (
    <main className="login">
      <Card className="login-card">
        <h1 className="page-title">{zh.login.title}</h1>
        {notice && !problem ? <p role="status">{notice}</p> : null}
        <ProblemAlert problem={problem} />
        <Form labelAlign="top" colon={false} onSubmit={() => void submit()}>
            <TextField
              label={zh.login.username}
              name="username"
              value={username}
              onChange={setUsername}
              required
              autoComplete="username"
            />
            <TextField
              label={zh.login.password}
              name="password"
              type="password"
              value={password}
              onChange={setPassword}
              required
              autoComplete="current-password"
            />
          <Button type="submit" theme="primary" block loading={busy}>
            {zh.login.submit}
          </Button>
        </Form>
      </Card>
    </main>
  )
}
