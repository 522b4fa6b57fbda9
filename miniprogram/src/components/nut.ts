// The NutUI components the client uses, imported one by one: the package's barrel entry
// otherwise brings its whole library into every page chunk of the H5 build.
export { default as Cell } from '@nutui/nutui-react-taro/dist/es/packages/cell'
export { default as Tag } from '@nutui/nutui-react-taro/dist/es/packages/tag'
