/** Which target this build is for: some WeChat abilities (实人, subscriptions, scanning) exist only in the mini-program. */
export const IN_WEAPP = process.env.TARO_ENV === 'weapp'

/** The H5 build (a browser): the client renders native HTML controls there (components/controls.tsx). */
export const IN_H5 = process.env.TARO_ENV === 'h5'
