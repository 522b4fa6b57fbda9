// The H5 build served for a phone-sized browser window, with the gateway behind the same
// origin: /api/* is passed to the gateway as it came (method, headers, body), so the page needs
// no CORS and the build no gateway address (built with TARO_APP_API_BASE= empty). Used by
// `./dev client` and by the browser tests; Node's own http module only, nothing to install.
//
//   node scripts/serve-h5.mjs [--port 8080] [--gateway http://127.0.0.1:8000] [--dir dist/h5]
import { createReadStream, statSync } from 'node:fs'
import { createServer, request as httpRequest } from 'node:http'
import { extname, join, normalize, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = fileURLToPath(new URL('..', import.meta.url))

function option(name, fallback) {
  const at = process.argv.indexOf(`--${name}`)
  return at > 0 && process.argv[at + 1] ? process.argv[at + 1] : fallback
}

const port = Number(option('port', process.env.PORT || '8080'))
const host = option('host', '127.0.0.1')
const gateway = new URL(option('gateway', process.env.WANGBAN_GATEWAY_URL || 'http://127.0.0.1:8000'))
const root = resolve(here, option('dir', 'dist/h5'))

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.ico': 'image/x-icon',
  '.woff': 'font/woff',
  '.woff2': 'font/woff2',
  '.ttf': 'font/ttf',
  '.map': 'application/json',
}

function proxy(req, res) {
  const upstream = httpRequest(
    {
      protocol: gateway.protocol,
      hostname: gateway.hostname,
      port: gateway.port,
      method: req.method,
      path: req.url,
      // The gateway sees the browser's own headers; Host names the gateway.
      headers: { ...req.headers, host: gateway.host },
    },
    (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers)
      answer.pipe(res)
    },
  )
  upstream.on('error', (error) => {
    if (!res.headersSent) {
      res.writeHead(502, { 'content-type': 'application/problem+json; charset=utf-8' })
    }
    res.end(
      JSON.stringify({
        type: 'about:blank',
        title: 'Bad Gateway',
        status: 502,
        detail: `网关不可达：${error.code ?? error.message}`,
      }),
    )
  })
  req.pipe(upstream)
}

function file(req, res) {
  const path = decodeURIComponent(new URL(req.url, 'http://h5').pathname)
  let target = normalize(join(root, path))
  if (!target.startsWith(root)) {
    res.writeHead(403).end()
    return
  }
  let stat = null
  try {
    stat = statSync(target)
    if (stat.isDirectory()) {
      target = join(target, 'index.html')
      stat = statSync(target)
    }
  } catch {
    // The router's paths (browser history) all load the one page.
    target = join(root, 'index.html')
    try {
      stat = statSync(target)
    } catch {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' })
      res.end(`未找到 H5 构建：${root}（先运行 npm run build:h5）`)
      return
    }
  }
  const html = target.endsWith('.html')
  res.writeHead(200, {
    'content-type': TYPES[extname(target)] ?? 'application/octet-stream',
    'content-length': stat.size,
    // Asset names carry their content hash; the page itself must be read afresh.
    'cache-control': html ? 'no-cache' : 'public, max-age=31536000, immutable',
  })
  createReadStream(target).pipe(res)
}

const server = createServer((req, res) => {
  if (req.url.startsWith('/api/')) proxy(req, res)
  else file(req, res)
})

server.listen(port, host, () => {
  const address = server.address()
  console.log(`H5 client: http://${host}:${address.port}/ (gateway ${gateway.origin})`)
})

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => server.close(() => process.exit(0)))
}
