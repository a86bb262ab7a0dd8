/** The Entra registration walk-through, shown by the wizard and printed by `init --help`. */
export function registrationSteps(redirectUri: string): string {
  return `Register your own Microsoft app (once, about 5 minutes):
  1. Sign in at https://entra.microsoft.com (personal accounts need a free Entra tenant,
     e.g. from an Azure free account or the Microsoft 365 Developer Program).
  2. Identity > Applications > App registrations > New registration.
     Name: anything you will recognise on the consent screen, e.g. "My backup broker".
     Supported account types: "Personal Microsoft accounts only" for a personal
     OneDrive (tenant "consumers"), or "Accounts in any organizational directory and
     personal Microsoft accounts" (tenant "common").
  3. Redirect URI: platform Web (not "Single-page application": those refresh
     tokens die after 24 hours), value exactly:
         ${redirectUri}
  4. Register, then copy the "Application (client) ID".`;
}

export const SECRET_STEPS = `Create the app secret:
  5. Certificates & secrets > Client secrets > New client secret; pick an expiry
     (Microsoft recommends under 12 months) and note the date.
  6. Copy the secret's Value right away (it is shown once). Not the "Secret ID":
     that one looks like a GUID and will be rejected.`;

export const PERMISSION_STEPS = `Permissions:
  7. API permissions > Add a permission > Microsoft Graph > Delegated permissions:
     offline_access, openid, profile, Files.ReadWrite (OneDrive);
     Files.ReadWrite.All and Group.Read.All only if you back up to SharePoint or groups.
     In a work tenant, "Grant admin consent" if users may not consent themselves.`;
