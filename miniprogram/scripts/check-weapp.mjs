// What WeChat refuses at upload, checked on the weapp build before anyone opens DevTools:
// every page in app.json (main package and subpackages) has its .js, .json and .wxml; every
// file a tab bar names exists; no package over 2 MB and all of them over 20 MB together (the
// platform's limits for a mini-program's code package); no file outside the packages that a
// page could not load.
//
//   node scripts/check-weapp.mjs [dist/weapp]      exits 1 and lists every problem found
import { readFileSync, readdirSync, statSync, existsSync } from 'node:fs'
import { join, relative, resolve, sep } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = fileURLToPath(new URL('..', import.meta.url))
const dist = resolve(here, process.argv[2] ?? 'dist/weapp')

const PACKAGE_LIMIT = 2 * 1024 * 1024
const TOTAL_LIMIT = 20 * 1024 * 1024
const PAGE_FILES = ['.js', '.json', '.wxml']

const problems = []

function files(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name)
    return entry.isDirectory() ? files(path) : [path]
  })
}

if (!existsSync(join(dist, 'app.json'))) {
  console.error(`no app.json in ${dist}: build the weapp first (npm run build:weapp)`)
  process.exit(1)
}

const app = JSON.parse(readFileSync(join(dist, 'app.json'), 'utf8'))
const subpackages = app.subPackages ?? app.subpackages ?? []
const pages = [
  ...(app.pages ?? []),
  ...subpackages.flatMap((sub) => (sub.pages ?? []).map((page) => `${sub.root.replace(/\/$/, '')}/${page}`)),
]
if (!app.pages?.length) problems.push('app.json registers no page')
if (new Set(pages).size !== pages.length) problems.push('app.json registers a page twice')

for (const page of pages) {
  for (const ext of PAGE_FILES) {
    if (!existsSync(join(dist, `${page}${ext}`))) problems.push(`page ${page}: ${page}${ext} is missing`)
  }
}

// Pages present in the build but not registered: WeChat would never load them (a page the
// router was meant to reach).
const registered = new Set(pages)
for (const path of files(dist)) {
  const rel = relative(dist, path).split(sep).join('/')
  const match = rel.match(/^(.*)\.wxml$/)
  if (match && rel.includes('pages/') && !registered.has(match[1]) && !rel.startsWith('comp')) {
    problems.push(`page ${match[1]} is built but not registered in app.json`)
  }
}

for (const item of app.tabBar?.list ?? []) {
  if (!registered.has(item.pagePath)) problems.push(`tab bar names unregistered page ${item.pagePath}`)
  for (const icon of [item.iconPath, item.selectedIconPath].filter(Boolean)) {
    if (!existsSync(join(dist, icon))) problems.push(`tab bar icon ${icon} is missing`)
  }
}

// Sizes: each subpackage's root is its own package; everything else is the main package.
const roots = subpackages.map((sub) => sub.root.replace(/\/$/, '') + '/')
const sizes = { main: 0 }
for (const root of roots) sizes[root] = 0
let total = 0
for (const path of files(dist)) {
  const rel = relative(dist, path).split(sep).join('/')
  if (rel.endsWith('.map')) continue // not uploaded
  const size = statSync(path).size
  total += size
  const root = roots.find((r) => rel.startsWith(r))
  sizes[root ?? 'main'] += size
}
for (const [name, size] of Object.entries(sizes)) {
  if (size > PACKAGE_LIMIT) {
    problems.push(`package ${name} is ${(size / 1024).toFixed(0)} KB, over WeChat's 2048 KB`)
  }
}
if (total > TOTAL_LIMIT) problems.push(`all packages are ${(total / 1024).toFixed(0)} KB, over 20480 KB`)

const summary = Object.entries(sizes)
  .map(([name, size]) => `${name} ${(size / 1024).toFixed(0)} KB`)
  .join(', ')
if (problems.length) {
  console.error(`weapp build in ${dist} would be refused:`)
  for (const problem of problems) console.error(`  - ${problem}`)
  process.exit(1)
}
console.log(`weapp build ok: ${pages.length} pages registered; ${summary}`)
