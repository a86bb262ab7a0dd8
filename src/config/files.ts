/** The files in BROKER_HOME; home.ts says where that is (and loads node:fs, which these names do not need). */
export const SETTINGS_FILE = 'settings.json';
export const STORE_FILE = 'broker.db';
