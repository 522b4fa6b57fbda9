import { zh } from './i18n/zh'

export default defineAppConfig({
  pages: [
    'pages/home/index',
    'pages/login/index',
    'pages/search/index',
    'pages/guide/index',
    'pages/apply/index',
    'pages/applications/index',
    'pages/application/index',
    'pages/wallet/index',
    'pages/certificate/index',
    'pages/messages/index',
    'pages/me/index',
    'pages/realname/index',
    'pages/companies/index',
    'pages/data-usage/index',
    'pages/phone/index',
    'pages/verify/index'
  ],
  window: {
    backgroundTextStyle: 'light',
    navigationBarBackgroundColor: '#ffffff',
    navigationBarTitleText: zh.appName,
    navigationBarTextStyle: 'black'
  },
  tabBar: {
    color: '#4a4a4a',
    selectedColor: '#0b5cad',
    backgroundColor: '#ffffff',
    borderStyle: 'black',
    list: [
      { pagePath: 'pages/home/index', text: zh.tabs.home },
      { pagePath: 'pages/applications/index', text: zh.tabs.applications },
      { pagePath: 'pages/wallet/index', text: zh.tabs.wallet },
      { pagePath: 'pages/me/index', text: zh.tabs.me }
    ]
  }
})
