// Taro's preset compiles React + TypeScript for every target (the mini-program and H5).
module.exports = {
  presets: [
    ['taro', { framework: 'react', ts: true, compiler: 'webpack5' }]
  ]
}
