/**
 * How to register the owner's app at each provider other than Microsoft (whose
 * walk-through is entra-steps.ts), with the pitfalls that bite later. Shown by
 * the wizard; the README carries the same text (scripts/provider-steps.ts).
 */
import type { ProviderId } from '../oauth/providers.ts';

export type OtherProvider = Exclude<ProviderId, 'microsoft'>;

export function providerSteps(id: OtherProvider, redirectUri: string): string {
  switch (id) {
    case 'google':
      return `Google (googledrive, googledocs, gcs):
  1. https://console.cloud.google.com: create a project; APIs & Services > Library:
     enable "Google Drive API" (googledrive, googledocs) and/or "Cloud Storage"
     JSON API (gcs) in that same project.
  2. Google Auth Platform > Branding/Audience: user type External, add yourself
     as a test user, then PUBLISH THE APP ("In production"). An app left in
     "Testing" loses every refresh token after 7 days; an unverified app in
     production only shows a warning screen, which you may accept.
  3. Clients > Create client > type "Web application"; Authorized redirect URI
     exactly:
         ${redirectUri}
  4. Copy the Client ID and the Client secret.
  Note: googledrive (drive.file) sees only files this app created, not backups
  made through another app; use googledocs (full drive) for those.`;
    case 'dropbox':
      return `Dropbox (dropbox):
  1. https://www.dropbox.com/developers/apps > Create app: "Scoped access",
     "Full Dropbox" (an "App folder" app cannot see backups made elsewhere).
  2. Permissions tab, BEFORE the first connect: tick files.metadata.write,
     files.metadata.read, files.content.write, files.content.read; Submit.
  3. Settings tab > OAuth 2 > Redirect URIs: add exactly
         ${redirectUri}
  4. Copy the App key (client id) and the App secret.`;
    case 'box':
      return `Box (box.com):
  1. https://app.box.com/developers/console > Create Platform App >
     "User Authentication (OAuth 2.0)" (it cannot be changed later).
  2. Configuration > Application Scopes: "Read and write all files and folders
     stored in Box"; OAuth 2.0 Redirect URIs: add exactly
         ${redirectUri}
  3. Copy the Client ID and the Client Secret. In an enterprise, an admin may
     have to authorize the app.`;
    case 'pcloud':
      return `pCloud (pcloud):
  1. https://docs.pcloud.com/my_apps/ > create an app; give it the folder and
     write access your backups need.
  2. Redirect URIs: add exactly
         ${redirectUri}
  3. Copy the Client ID and the Client secret.
  pCloud has no refresh tokens: the broker shows the access token once after
  the sign-in and keeps nothing; Duplicati takes it as --authid directly.`;
  }
}
