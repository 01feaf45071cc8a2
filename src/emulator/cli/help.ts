export const DEFAULT_DATA_DIR = './data/emulator';
export const DEFAULT_HTTPS_PORT = 5443;
export const DEFAULT_HTTP_PORT = 5080;
export const DEFAULT_GENERATE = { tenants: 3, users: 100, groups: 0, seed: 42 };

export const EMULATOR_HELP = `Usage: roster emulator [options]          start the Entra ID + Graph emulator
       roster emulator <verb> ... [options]  drive a running emulator

Start options:
  --data-dir DIR            CA, signing keys and saved state (default ${DEFAULT_DATA_DIR})
  --memory                  keep everything in memory (no data folder)
  --https-port N            back channel: discovery, keys, token, Graph (default ${DEFAULT_HTTPS_PORT}; 0 = any)
  --http-port N             browser pages and the control API (default ${DEFAULT_HTTP_PORT}; 0 = any)
  --tenants N --users N --groups N --seed N
                            generate N tenants of N users and N groups (default ${DEFAULT_GENERATE.tenants} x ${DEFAULT_GENERATE.users} users,
                            no groups, seed ${DEFAULT_GENERATE.seed}); groups nest, sizes vary, the first holds most users
  --consented N             the first N generated tenants start consented to the demo app (default 0)
  --fixture FILE            seed from a JSON fixture (see docs/examples/emulator-fixture.json)
  --demo                    the demo directory: Contoso, Fabrikam, Northwind Traders
  --password PW             password of generated accounts (default roster-demo)
  --redirect-uri URI        redirect URI of the demo app (repeatable)
  --post-logout-redirect-uri URI  (repeatable)
  --consent-delay SECONDS   time between admin consent and tokens that carry it
  --control-token T         control API token (random by default)
Saved state in the data folder wins over the seeding options.
Prints one JSON line {"event":"ready",...} on stdout when ready; logs go to stderr.

Verbs (find the emulator by --data-dir's control.json, or --control-url and --control-token):
  state
  tenant add --name NAME [--domain D ...] [--id GUID] [--country CC] [--users N] [--groups N] [--seed N] [--consent]
  tenant list | tenant show|edit|remove TENANT   (edit: --name, --country, --add-domain D)
  tenant changes TENANT [--since-seq N] [--limit N]   (the change log that delta replays)
  user add --tenant T --upn UPN [--name ..] [--given-name ..] [--surname ..] [--job-title ..] [--department ..]
           [--mail ..] [--office ..] [--password ..] [--admin] [--disabled] [--guest] [--json '{...}']
  user show|edit|delete|restore|purge USER --tenant T   (edit takes the add options; --no-admin, --enabled)
  user delete-many --tenant T --share 0..1 | --count N [--permanent] [--seed N]
                            delete that share of the users (never administrators); --permanent purges them
  group add --tenant T --name NAME [--kind security|microsoft365|distribution|dynamic] [--rule RULE]
            [--description ..] [--nickname ..] [--mail ..] [--id GUID] [--member M ...] [--json '{...}']
  group list --tenant T
  group show|edit|delete|restore|purge GROUP --tenant T   (GROUP: id or mail nickname; edit takes --name, --description,
            --rule, --nickname, --mail, --json; delete: Microsoft 365 groups go to deleted items, others at once)
  group member add|remove GROUP MEMBER --tenant T   (MEMBER: user id or UPN, group id or nickname)
  consent grant|revoke --tenant T [--app APPID]   (grant --role R ...: exactly these permissions, e.g. without groups)
  consent revoke --tenant T --revoke-tokens   also refuse the app's tokens already issued there (as continuous
                            access evaluation does); without it Graph honours them until they expire
  keys rotate [--drop-previous]
  delta expire --tenant T
  app show|disable|enable [--app APPID]   (default: the demo app)
  fault add --target graph|token|notification|any --kind throttle|unavailable|delay|drop
            [--retry-after S] [--delay-ms N] [--share 0..1 | --count N] [--tenant T]
            (notification: delay or drop the delivery of change notifications)
  fault list | fault clear | fault remove ID
  subscription list [--tenant T]   (change-notification subscriptions and their deliveries)
  subscription lifecycle ID [--event reauthorizationRequired]
  requests [--tenant T] [--route "GET /v1.0/users"] [--since-ms N] [--limit N]
  requests clear
  stats
  clock advance --seconds N
  settings [--consent-delay S] [--missing-sp-error 700016|7000229]
  save
Each verb prints its JSON result on stdout. Exit codes: 1 on errors, 2 on bad usage.
`;

