/**
 * Demo personas of docs/demo.md for the development login (H5, local only). The people are
 * invented (sandbox/data/people.yaml); the sandbox register knows them. Only the H5 build holds
 * them: the weapp build renders the WeChat login instead, and the list is left out of it.
 */
export interface Persona {
  key: string
  name: string
  idNumber: string
}

export const PERSONAS: Persona[] = [
  { key: 'chen_bingkun', name: '陈炳坤', idNumber: '441900194403150311' },
  { key: 'he_xiuying', name: '何秀英', idNumber: '441900195206180428' },
  { key: 'luo_wenhua', name: '罗文华', idNumber: '430102199304121573' },
  { key: 'liu_jianguo', name: '刘建国', idNumber: '430102199201211752' },
  { key: 'zhang_lijuan', name: '张丽娟', idNumber: '441900199510030844' },
  { key: 'wang_fang', name: '王芳', idNumber: '510104199702140289' },
  { key: 'zhao_zhigang', name: '赵志刚', idNumber: '441900198111301139' },
  { key: 'liang_yongkang', name: '梁永康', idNumber: '441900197207070959' },
  { key: 'deng_meiling', name: '邓美玲', idNumber: '450103198812010461' },
  { key: 'zhou_guohua', name: '周国华', idNumber: '44190019760509071X' },
  { key: 'wu_haiyan', name: '吴海燕', idNumber: '441900198509191267' },
  { key: 'li_guifen', name: '李桂芬', idNumber: '441900196803030481' }
]
