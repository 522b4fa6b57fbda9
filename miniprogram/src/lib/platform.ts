/** Which target this build is for: some WeChat abilities (实人, subscriptions, scanning) exist only in the mini-program. */
export const IN_WEAPP = process.env.TARO_ENV === 'weapp'
