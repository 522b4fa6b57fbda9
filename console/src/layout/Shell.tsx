// The frame of every page after login: header (who, department, region, 退出登录), the side
// menu of workspaces the member may open, and the page in <main>.
import { Suspense } from 'react'
import { Link, Outlet, useLocation, useNavigate } from 'react-router-dom'
import { Button, Layout, Loading, Menu } from 'tdesign-react'
import { useAuth } from '../auth/AuthContext'
import { WORKSPACES } from '../workspaces'
import { zh } from '../i18n/zh'

const { Header, Aside, Content } = Layout
const { MenuItem } = Menu

export function Shell() {
  const { state, can, logout } = useAuth()
  const location = useLocation()
  const navigate = useNavigate()
  if (state.status !== 'ready') return null
  const { me, username } = state
  const visible = WORKSPACES.filter((workspace) => workspace.operations.some(can))
  const active = visible.find((w) => location.pathname === w.path || location.pathname.startsWith(`${w.path}/`))

  return (
    <Layout className="shell">
      <Header className="shell-header">
        <span className="brand">{zh.app.name}</span>
        <dl className="who">
          <div>
            <dt>{zh.header.user}</dt>
            <dd>{username}</dd>
          </div>
          <div>
            <dt>{zh.header.department}</dt>
            <dd>{me.department ?? zh.app.none}</dd>
          </div>
          <div>
            <dt>{zh.header.region}</dt>
            <dd>{me.region ?? zh.app.none}</dd>
          </div>
        </dl>
        <Button
          theme="default"
          variant="outline"
          onClick={async () => {
            await logout()
            navigate('/login', { replace: true })
          }}
        >
          {zh.header.logout}
        </Button>
      </Header>
      <Layout>
        <Aside className="shell-aside">
          <nav aria-label={zh.header.nav}>
            <Menu value={active?.path ?? ''} width="100%">
              {visible.map((workspace) => (
                <MenuItem key={workspace.path} value={workspace.path}>
                  <Link
                    to={workspace.path}
                    className="menu-link"
                    data-operations={workspace.operations.join(' ')}
                    aria-current={active?.path === workspace.path ? 'page' : undefined}
                  >
                    {workspace.label}
                  </Link>
                </MenuItem>
              ))}
            </Menu>
          </nav>
        </Aside>
        <Content className="shell-content">
          {/* A workspace's code arrives when it is first opened (App.tsx); the menu stays meanwhile. */}
          <Suspense fallback={<Loading text={zh.app.loading} />}>
            <Outlet />
          </Suspense>
        </Content>
      </Layout>
    </Layout>
  )
}
