/**
 * The connect passcodes of the tests: the owner's, for the in-process harness and
 * for every broker home the binary tests configure, and a second one where a test
 * changes it.
 */
export const PASSCODE = 'correct horse battery staple';
export const OTHER_PASSCODE = 'another-passcode-1234';
