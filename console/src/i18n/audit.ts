// The audit workspace's Chinese texts (part of zh, see zh.ts).

export const auditText = {} as const
