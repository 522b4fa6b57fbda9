import qrcode from 'qrcode-generator'

/** The QR code of `payload` as an image data URL (GIF), shown with Image on both targets. */
export function qrDataUrl(payload: string): string {
  const code = qrcode(0, 'M')
  code.addData(payload, 'Byte')
  code.make()
  return code.createDataURL(6, 4)
}
