/** Every piece of text the citizen sees, in one place (简体中文). */
export const zh = {
  appName: '网办',
  common: {
    loading: '加载中…',
    retry: '重试',
    empty: '暂无内容',
    failed: '加载失败',
    back: '返回',
    submit: '提交',
    cancel: '取消',
    confirm: '确定',
    save: '保存',
    yes: '是',
    no: '否',
    required: '必填',
    optional: '选填',
    days: (n: number) => `${n} 个工作日`,
    degraded: '该部分暂时无法加载，其他内容不受影响'
  },
  tabs: {
    home: '首页',
    applications: '我的办件',
    wallet: '证照夹',
    me: '我的'
  },
  titles: {
    login: '登录',
    home: '首页',
    search: '搜索',
    guide: '办事指南',
    apply: '申请',
    applications: '我的办件',
    application: '办件详情',
    wallet: '证照夹',
    certificate: '证照详情',
    messages: '消息',
    me: '我的'
  },
  login: {
    heading: '登录网办',
    wechat: '微信一键登录',
    wechatHint: '使用微信身份登录，办理事项前可能需要实名认证',
    devBanner: '仅限本地开发',
    devHint: '开发登录只在网关以本地或测试环境运行时可用，选择一位演示人物登录（数据均为虚构）。',
    persona: '演示人物',
    openid: '开发 openid',
    devSubmit: '以该人物登录',
    failed: '登录失败',
    expired: '登录已失效，请重新登录；正在填写的表单已保存'
  },
  home: {
    searchPlaceholder: '搜索事项，如“居住证”',
    searchLabel: '搜索事项',
    hotItems: '热门事项',
    myOpen: '我的在办件',
    unread: (n: number) => `${n} 条未读消息`,
    noUnread: '没有未读消息',
    wallet: (n: number) => `证照夹 ${n} 张证照`,
    parts: {
      hot_items: '热门事项',
      my_open_applications: '在办件',
      unread_messages: '消息',
      wallet_count: '证照夹'
    } as Record<string, string>,
    degradedPart: (name: string) => `${name}暂时无法加载`,
    allServices: '全部事项'
  },
  search: {
    label: '搜索事项',
    placeholder: '输入事项名称或关键词',
    filters: '筛选',
    miaopi: '只看秒批',
    lists: '清单',
    anyList: '不限',
    listNames: ['马上办', '网上办', '就近办', '一次办'],
    results: (n: number) => `共 ${n} 项`,
    none: '没有找到相关事项',
    more: '加载更多',
    auto: '秒批',
    committed: (n: number) => `承诺 ${n} 个工作日`
  },
  guide: {
    department: '实施部门',
    itemType: '事项类型',
    conditions: '受理条件',
    legalBasis: '设定依据',
    legalDays: '法定办结时限',
    committedDays: '承诺办结时限',
    fees: '收费',
    free: '不收费',
    materials: '申请材料',
    visits: (n: number) => `到现场 ${n} 次`,
    noVisits: '零跑动',
    auto: '本事项支持秒批：符合条件的申请由系统即时办结',
    sources: {
      upload: '需上传',
      commitment: '可告知承诺',
      waived: '免提交',
      shared: '免提交（政府数据共享获取）',
      certificate: '免提交（调用电子证照）'
    },
    mayBeMissing: (days: number | null) =>
      days ? `可容缺受理，${days} 个工作日内补齐` : '可容缺受理，事后补齐',
    copies: (originals: number, copies: number) => `原件 ${originals} 份，复印件 ${copies} 份`,
    apply: '在线申请',
    noForm: '本事项暂不支持在线申请'
  },
  apply: {
    formHeading: '填写申请表',
    materialsHeading: '申请材料',
    prefilled: '由政府数据预填，无需填写',
    materialShared: '由系统通过数据共享获取，无需提交',
    commitmentLabel: '以告知承诺代替此材料',
    commitmentBelow: '可以告知承诺代替：请阅读并接受下方的承诺',
    commitmentText:
      '本人承诺所填信息真实、符合办理条件；如承诺不实，愿承担相应法律责任，并同意撤销办理结果。',
    acceptCommitment: '我已阅读并接受告知承诺',
    toleratedLabel: '暂缺此材料，先行受理（容缺）',
    toleratedNote: (days: number | null) =>
      days
        ? `容缺受理后须在 ${days} 个工作日内补齐，逾期未补齐的申请将不予受理`
        : '容缺受理后须按通知补齐，逾期未补齐的申请将不予受理',
    uploadNeeded: '需上传：请在“我的办件”中提交草稿后上传，或到窗口提交',
    choose: '请选择',
    selectSome: '可多选',
    submit: '提交申请',
    submitting: '正在提交…',
    saveDraft: '保存草稿',
    draftRestored: '已恢复上次未提交的内容',
    missing: (field: string) => `请填写“${field}”`,
    invalid: (field: string) => `“${field}”格式不正确`,
    commitmentRequired: '请先接受告知承诺',
    done: '申请已提交',
    failed: '提交失败'
  },
  applications: {
    empty: '还没有办件',
    submittedAt: '提交时间',
    createdAt: '创建时间',
    dueDate: '办结期限',
    toleratedUntil: '容缺补齐期限',
    timeline: '办理进度',
    materials: '材料',
    form: '申请信息',
    reason: '原因',
    supplement: '补正 / 补齐材料',
    supplementHint: '为待补的材料选择以告知承诺代替，或到窗口提交',
    supplementSubmit: '提交补正',
    withdraw: '撤回申请',
    withdrawConfirm: '确定撤回这件申请吗？撤回后可重新申请。',
    withdrawn: '已撤回',
    rate: '评价本次服务（好差评）',
    rateScore: '评分',
    scores: ['非常不满意', '不满意', '一般', '满意', '非常满意'],
    rateTags: '评价标签',
    rateComment: '评价内容（选填，最多 500 字）',
    rateSubmit: '提交评价',
    rated: '感谢您的评价',
    // Application states as wangban/labels.py names them (the timeline carries only the codes).
    statusNames: {
      draft: '草稿',
      submitted: '已提交',
      accepted: '已受理',
      not_accepted: '不予受理',
      under_review: '审查中',
      correction_requested: '待补正',
      resubmitted: '已补正',
      approved: '审批通过',
      certificate_failed: '审批通过，证照待出具',
      denied: '不予通过',
      completed: '已办结',
      delivered: '结果已送达',
      withdrawn: '已撤回',
      terminated: '已终止'
    } as Record<string, string>,
    materialStatus: {
      missing: '缺少',
      tolerated: '容缺（待补齐）',
      uploaded: '已上传',
      reused: '已上传（复用）',
      shared: '数据共享获取',
      certificate: '电子证照',
      waived: '免提交',
      commitment: '告知承诺'
    } as Record<string, string>
  },
  wallet: {
    empty: '证照夹里还没有证照',
    issuer: '发证机关',
    issuedAt: '签发时间',
    validFrom: '有效期起',
    validUntil: '有效期至',
    longTerm: '长期',
    status: '状态',
    qr: '亮证二维码',
    qrHint: '向工作人员出示此二维码以核验证照真伪',
    qrLabel: (name: string) => `${name}的亮证二维码`
  },
  messages: {
    empty: '没有消息',
    unreadOnly: '只看未读',
    markRead: '标为已读',
    read: '已读',
    unread: '未读',
    more: '加载更多',
    open: '查看办件'
  },
  me: {
    heading: '我的',
    assurance: {
      wechat: '微信用户（未实名）',
      real_name: '已实名认证',
      real_person: '已实人认证'
    } as Record<string, string>,
    idNumber: '证件号码',
    companies: '我的企业',
    care: '长辈版',
    careHint: '字体更大，页面更简洁',
    messages: '消息',
    search: '搜索事项',
    logout: '退出登录'
  }
}

export type Zh = typeof zh
