// The rectification workspace's Chinese texts (part of zh, see zh.ts).

export const rectificationText = {} as const
