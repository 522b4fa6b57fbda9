// What the ops pages show for a service's name, and the services that keep dead letters (those
// that read events; the gateway reads none).
import { zh } from '../../i18n/zh'

export const EVENT_SERVICES = ['catalog', 'intake', 'approval', 'sharing', 'notify'] as const

export type EventService = (typeof EVENT_SERVICES)[number]

export function serviceName(service: string): string {
  return zh.ops.services[service] ?? service
}

export function isEventService(value: string | null): value is EventService {
  return (EVENT_SERVICES as readonly string[]).includes(value ?? '')
}
