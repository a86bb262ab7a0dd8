/** Kept for the imports that name it: the services are in providers.ts. */
export * from './providers.ts';
