// The stats workspace's Chinese texts (part of zh, see zh.ts).

export const statsText = {} as const
