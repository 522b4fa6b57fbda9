// Saving what the gateway answered as a file (an export, a material): the answer is fetched with
// the bearer token, so a plain link could not carry it.

/** Offers `blob` to the browser as a download named `filename`. */
export function saveBlob(blob: Blob, filename: string): void {
  const url = URL.createObjectURL(blob)
  const link = document.createElement('a')
  link.href = url
  link.download = filename
  document.body.appendChild(link)
  link.click()
  link.remove()
  // The click has handed the URL to the download; revoking it later frees the memory.
  setTimeout(() => URL.revokeObjectURL(url), 60_000)
}
