/**
 * 实人: WeChat's face verification (人脸核身) with the verify_id the gateway got from WeChat's
 * getVerifyId. The mini-program's wx.requestFacialVerify (base library 3.8.12+) is not in
 * Taro 4.1's API, so it is called on wx directly; there is no such thing in H5.
 */
interface FacialVerifyFailure {
  errMsg?: string
  errCode?: number
}

interface WxFacial {
  requestFacialVerify?: (option: {
    verifyId: string
    success: () => void
    fail: (failure: FacialVerifyFailure) => void
  }) => void
}

declare const wx: WxFacial | undefined

export function faceVerificationAvailable(): boolean {
  return typeof wx !== 'undefined' && typeof wx?.requestFacialVerify === 'function'
}

/** Resolves when WeChat's face check finished (its result is asked of WeChat by the gateway). */
export function requestFacialVerify(verifyId: string): Promise<void> {
  return new Promise((resolve, reject) => {
    if (typeof wx === 'undefined' || typeof wx?.requestFacialVerify !== 'function') {
      reject(new Error('unsupported'))
      return
    }
    wx.requestFacialVerify({
      verifyId,
      success: () => resolve(),
      fail: (failure) => reject(new Error(failure.errMsg ?? 'failed'))
    })
  })
}
