// Who has claimed a case, shared by the queue and the case page.
import { zh } from '../../i18n/zh'

/** Who has claimed a case, as a colleague reads it: the member themself by their login name
 * (the case records the member's opaque subject). */
export function assigneeText(
  assignee: string | null,
  me: { me: { subject: string }; username: string } | null
): string {
  if (assignee === null) return zh.review.unassigned
  return me && assignee === me.me.subject ? zh.review.mine(me.username) : assignee
}
