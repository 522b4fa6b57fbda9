// The catalog workspace's Chinese texts (part of zh, see zh.ts).

export const catalogText = {} as const
