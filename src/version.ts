import pkg from '../package.json' with { type: 'json' };

// Set by scripts/build.ts with `--define`; absent when running from source (tests, `bun bin/broker.ts`).
declare const BUILD_COMMIT: string | undefined;

/**
 * Bundled into the binary at build time, so `--version` needs no file at run time.
 * `0.1.0+1a2b3c4` (semver build metadata) names the commit a binary was built from;
 * a build outside a git checkout (e.g. a source tarball) is plain `0.1.0`.
 */
export const VERSION: string = typeof BUILD_COMMIT === 'string' && BUILD_COMMIT ? `${pkg.version}+${BUILD_COMMIT}` : pkg.version;
