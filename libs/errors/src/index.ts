export { BalesError, ErrorCode } from './bales-error';
