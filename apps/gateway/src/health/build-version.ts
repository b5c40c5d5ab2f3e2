import { version } from '../../../../package.json';

/** The gateway's version, from package.json (a compiled build carries its own copy next to dist/apps). */
export const BUILD_VERSION: string = version;
