// The ops workspace's Chinese texts (part of zh, see zh.ts).

export const opsText = {} as const
