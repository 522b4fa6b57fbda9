/// <reference types="@tarojs/taro" />

declare module '*.png'
declare module '*.css'

/** The gateway's base URL, fixed at build time from TARO_APP_API_BASE (config/index.ts). */
declare const API_BASE: string

declare namespace NodeJS {
  interface ProcessEnv {
    TARO_ENV: 'weapp' | 'h5' | 'swan' | 'alipay' | 'tt' | 'qq' | 'jd' | 'harmony' | 'rn' | 'quickapp'
  }
}
