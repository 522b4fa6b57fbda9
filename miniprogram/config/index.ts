import { defineConfig, type UserConfigExport } from '@tarojs/cli'

// The gateway every request goes to, fixed at build time. Locally `./dev up` serves it on 8000.
// Set but empty: the page's own origin (`./dev client` and the browser tests serve the H5 build
// with the gateway behind the same origin, scripts/serve-h5.mjs).
const apiBase = process.env.TARO_APP_API_BASE ?? 'http://127.0.0.1:8000'
// Where `npm run dev:h5` serves the H5 build (see docs/miniprogram.md on CORS).
const h5Port = Number(process.env.TARO_APP_H5_PORT || 10086)

export default defineConfig<'webpack5'>(async () => {
  const config: UserConfigExport<'webpack5'> = {
    projectName: 'wangban-miniprogram',
    date: '2026-12-07',
    // NutUI React Taro is drawn on a 375-wide design; our own styles on Taro's default 750.
    designWidth(input) {
      const file = typeof input === 'object' && input ? String(input.file ?? '') : ''
      return file.replace(/\\+/g, '/').includes('@nutui') ? 375 : 750
    },
    deviceRatio: {
      640: 2.34 / 2,
      750: 1,
      375: 2,
      828: 1.81 / 2
    },
    sourceRoot: 'src',
    // One directory per target: the weapp build and the H5 build live side by side.
    outputRoot: `dist/${process.env.TARO_ENV ?? 'h5'}`,
    plugins: [],
    defineConstants: {
      API_BASE: JSON.stringify(apiBase)
    },
    copy: { patterns: [], options: {} },
    framework: 'react',
    compiler: { type: 'webpack5', prebundle: { enable: false } },
    cache: { enable: false },
    mini: {
      postcss: {
        pxtransform: { enable: true, config: {} },
        cssModules: { enable: false }
      }
    },
    h5: {
      publicPath: '/',
      staticDirectory: 'static',
      router: { mode: 'hash' },
      // Content hashes in names: a new build is never hidden by a browser's cache.
      output: {
        filename: 'js/[name].[contenthash:8].js',
        chunkFilename: 'chunk/[name].[contenthash:8].js'
      },
      miniCssExtractPluginOption: {
        filename: 'css/[name].[contenthash:8].css',
        chunkFilename: 'css/[name].[contenthash:8].css'
      },
      devServer: { port: h5Port, host: '127.0.0.1' },
      // Taro's H5 components and NutUI once, shared by every page, instead of a copy of
      // them in each page's chunk (about 110 KB a page otherwise).
      webpackChain(chain) {
        chain.optimization.merge({
          splitChunks: {
            cacheGroups: {
              taroComponents: {
                name: 'taro-components',
                test: /[\\/]node_modules[\\/]@tarojs[\\/]components(-react)?[\\/]/,
                chunks: 'all',
                priority: 30,
                enforce: true
              },
              nutui: {
                name: 'nutui',
                test: /[\\/]node_modules[\\/]@nutui[\\/]/,
                chunks: 'all',
                priority: 30,
                enforce: true
              }
            }
          }
        })
      },
      postcss: {
        autoprefixer: { enable: true, config: {} },
        cssModules: { enable: false }
      }
    }
  }
  return config
})
