/**
 * 订阅消息: WeChat pushes a notice only after the citizen accepted its template, once per
 * acceptance, and asks only on a tap. askSubscriptions() must therefore be called straight
 * from a tap handler (before any await), and reports the answer to the gateway.
 *
 * The template ids are this deployment's own (notify's current WeChat templates, at most three:
 * WeChat takes no more in one request), read beforehand with subscriptionTemplates().
 */
import Taro from '@tarojs/taro'
import { api, type Schemas } from '../api/client'
import { IN_WEAPP } from './platform'

export type SubscriptionTemplate = Schemas['notify.SubscriptionTemplateOut']

/** What to ask for: read before the tap, since the tap's handler may not wait for the network. */
export function subscriptionTemplates(): Promise<SubscriptionTemplate[]> {
  return api.get('/api/v1/subscriptions/templates')
}

type Choice = Schemas['notify.SubscriptionReportIn']['results'][string]
const CHOICES: Choice[] = ['accept', 'reject', 'ban', 'filter']

const PENDING_KEY = 'wangban.askSubscribe'

/**
 * Ask WeChat for the citizen's consent and report what they chose. Null in H5 (nothing is
 * asked or reported there); the number of templates accepted otherwise.
 */
export function askSubscriptions(templates: SubscriptionTemplate[]): Promise<number> | null {
  if (!IN_WEAPP) return null
  const ids = templates.map((t) => t.template_id)
  const asked = Taro.requestSubscribeMessage({ tmplIds: ids } as Taro.requestSubscribeMessage.Option)
  return asked.then(async (answer) => {
    const raw = answer as unknown as Record<string, unknown>
    const results: Record<string, Choice> = {}
    for (const id of ids) {
      const choice = raw[id]
      if (typeof choice === 'string' && (CHOICES as string[]).includes(choice)) results[id] = choice as Choice
    }
    if (Object.keys(results).length === 0) return 0
    await api.post('/api/v1/subscriptions', { body: { results } })
    return Object.values(results).filter((c) => c === 'accept').length
  })
}

/** After filing: the application page offers the subscription once (a new tap is needed). */
export function markSubscribeOffer(applicationId: string): void {
  if (IN_WEAPP) Taro.setStorageSync(PENDING_KEY, applicationId)
}

export function subscribeOffered(applicationId: string): boolean {
  return IN_WEAPP && Taro.getStorageSync(PENDING_KEY) === applicationId
}

export function clearSubscribeOffer(): void {
  Taro.removeStorageSync(PENDING_KEY)
}
