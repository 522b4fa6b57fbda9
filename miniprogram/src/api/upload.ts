/**
 * Material uploads: POST /api/v1/applications/{id}/materials, multipart with the part `file`
 * and the field `material_name`. The gateway's document describes no request body for this
 * route (it passes the multipart through), so this one call is typed by hand.
 */
import Taro from '@tarojs/taro'
import { ApiError, type Schemas } from './client'
import type { paths } from './schema'
import { session } from './session'

type FileOut = Schemas['intake.FileOut']
const UPLOAD_PATH: keyof paths = '/api/v1/applications/{application_id}/materials'

async function once(applicationId: string, filePath: string, materialName: string) {
  const token = session.accessToken()
  return Taro.uploadFile({
    url: `${API_BASE}${UPLOAD_PATH.replace('{application_id}', encodeURIComponent(applicationId))}`,
    filePath,
    name: 'file',
    formData: { material_name: materialName },
    header: token ? { Authorization: `Bearer ${token}` } : {}
  })
}

export async function uploadMaterial(applicationId: string, filePath: string, materialName: string): Promise<FileOut> {
  let answer = await once(applicationId, filePath, materialName)
  if (answer.statusCode === 401 && (await session.refresh())) {
    answer = await once(applicationId, filePath, materialName)
  }
  if (answer.statusCode === 401) session.expired()
  let data: unknown = answer.data
  try {
    data = typeof answer.data === 'string' ? JSON.parse(answer.data) : answer.data
  } catch {
    // not JSON: leave as text
  }
  if (answer.statusCode === 201 || answer.statusCode === 200) return data as FileOut
  const problem = data && typeof data === 'object' && 'title' in data ? (data as Schemas['ProblemDetails']) : null
  throw new ApiError(answer.statusCode, problem, problem?.detail ?? problem?.title ?? `HTTP ${answer.statusCode}`)
}
