/** The OpenAPI 3.1 description served at /openapi.json (docs/api.md is the prose version). */
export function openApiDocument(): Record<string, unknown> {
  const job = { $ref: '#/components/schemas/Job' };
  const error = { description: 'error', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } };
  const json = (schema: unknown, description = 'ok') => ({ description, content: { 'application/json': { schema } } });
  const repoQuery = { name: 'repository', in: 'query', required: false, schema: { type: 'string', maxLength: 2048 }, description: 'a registered name, or "default" (the BACKUP_* repository, also when left out); a URL only with --allow-urls and not for viewers' };
  const idPath = { name: 'id', in: 'path', required: true, schema: { type: 'string' } };
  const errors = { 400: error, 401: error, 403: error, 404: error, 409: error, 413: error };
  return {
    openapi: '3.1.0',
    info: { title: 'cairn', version: '0.1.0', description: 'Backup and restore jobs. Authenticate with Authorization: Bearer <token>.' },
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
      schemas: {
        Error: { type: 'object', properties: { error: { type: 'object', properties: { code: { type: 'string' }, message: { type: 'string' } } } } },
        Job: {
          type: 'object',
          properties: {
            id: { type: 'string' },
            kind: { enum: ['backup', 'restore', 'copy', 'verify', 'prune'] },
            state: { enum: ['STARTED', 'TRANSFERRING', 'TRANSFERRED', 'FINALIZING', 'CANCELLING', 'SUCCESS', 'FAILED', 'CANCELED'] },
            params: { type: 'object' },
            progress: {
              type: 'object',
              properties: {
                bytes: { type: 'integer' },
                bytesTotal: { type: 'integer' },
                rows: { type: 'integer' },
                collectionsDone: { type: 'integer' },
                collectionsTotal: { type: 'integer' },
                throughput: { type: 'number', description: 'bytes per second' },
                etaSeconds: { type: 'number' },
              },
            },
            result: { type: ['object', 'null'] },
            error: { type: ['object', 'null'], properties: { code: { type: 'string' }, message: { type: 'string' } } },
            createdAt: { type: 'string', format: 'date-time' },
            updatedAt: { type: 'string', format: 'date-time' },
            finishedAt: { type: ['string', 'null'], format: 'date-time' },
          },
        },
        CreateBackup: {
          type: 'object',
          additionalProperties: false,
          required: ['source'],
          properties: {
            source: { type: 'string', description: 'postgres://… or sqlite://… URL' },
            repository: { type: 'string' },
            id: { type: 'string' },
            include: { type: 'array', items: { type: 'string' } },
            exclude: { type: 'array', items: { type: 'string' } },
            config: {
              type: 'object',
              additionalProperties: false,
              properties: {
                compression: { enum: ['zstd', 'gzip', 'none'] },
                level: { enum: ['fastest', 'default', 'best'] },
                jobs: { type: 'integer', minimum: 1 },
                cpuPercentage: { type: 'integer', minimum: 1, maximum: 80 },
                packSizeMiB: { type: 'integer', minimum: 1, maximum: 1024 },
              },
            },
          },
        },
        CreateRestore: {
          type: 'object',
          additionalProperties: false,
          required: ['backup', 'target'],
          properties: {
            backup: { type: 'string' },
            repository: { type: 'string' },
            target: { type: 'string' },
            include: { type: 'array', items: { type: 'string' } },
            exclude: { type: 'array', items: { type: 'string' } },
            renames: { type: 'object', additionalProperties: { type: 'string' } },
            onConflict: { enum: ['fail', 'overwrite'] },
            roles: { type: 'boolean' },
            jobs: { type: 'integer', minimum: 1 },
          },
        },
      },
    },
    security: [{ bearer: [] }],
    paths: {
      '/healthz': { get: { security: [], responses: { 200: json({ type: 'object' }) } } },
      '/metrics': { get: { security: [], description: 'Prometheus text format', responses: { 200: { description: 'metrics' } } } },
      '/v1/backups': {
        post: { summary: 'start a backup (operator)', requestBody: { content: { 'application/json': { schema: { $ref: '#/components/schemas/CreateBackup' } } } }, responses: { 202: json({ type: 'object', properties: { job } }), ...errors } },
        get: { summary: 'list backups', parameters: [repoQuery, { name: 'source', in: 'query', schema: { type: 'string' } }], responses: { 200: json({ type: 'object' }), ...errors } },
      },
      '/v1/backups/{id}': {
        get: { summary: "one backup's details", parameters: [idPath, repoQuery], responses: { 200: json({ type: 'object' }), ...errors } },
        delete: { summary: 'delete a backup (operator)', parameters: [idPath, repoQuery], responses: { 200: json({ type: 'object' }), ...errors } },
      },
      '/v1/restores': {
        post: { summary: 'start a restore (operator)', requestBody: { content: { 'application/json': { schema: { $ref: '#/components/schemas/CreateRestore' } } } }, responses: { 202: json({ type: 'object', properties: { job } }), ...errors } },
      },
      '/v1/copies': { post: { summary: 'copy a backup to another repository (operator): { backup, from, to }', responses: { 202: json({ type: 'object', properties: { job } }), ...errors } } },
      '/v1/verifications': { post: { summary: 'verify backups (operator): { repository, backups?, readData? }', responses: { 202: json({ type: 'object', properties: { job } }), ...errors } } },
      '/v1/prunes': { post: { summary: 'prune a repository (operator): { repository, dryRun?, graceSeconds? (default 3600: unreferenced packs younger than this are kept) }', responses: { 202: json({ type: 'object', properties: { job } }), ...errors } } },
      '/v1/sources': {
        post: { summary: 'register a source by name (admin): { name, url }; the URL may hold a password, which is never shown again', responses: { 201: json({ type: 'object' }), ...errors } },
        get: { summary: 'registered sources (name, location, createdAt)', responses: { 200: json({ type: 'object' }), ...errors } },
      },
      '/v1/sources/{name}': {
        delete: {
          summary: 'forget a source (admin); its backups are kept. 409 (naming them) while enabled schedules use it, unless force=true, which disables them',
          parameters: [
            { name: 'name', in: 'path', required: true, schema: { type: 'string' } },
            { name: 'force', in: 'query', schema: { type: 'boolean' } },
            { name: 'deleteScheduledBackups', in: 'query', schema: { type: 'boolean' } },
          ],
          responses: { 200: json({ type: 'object' }), ...errors },
        },
      },
      '/v1/repositories': {
        post: { summary: 'register an existing repository by name (admin): { name, url }', responses: { 201: json({ type: 'object' }), ...errors } },
        get: { summary: 'registered repositories', responses: { 200: json({ type: 'object' }), ...errors } },
      },
      '/v1/repositories/{name}': {
        delete: {
          summary: 'forget a repository (admin); its data is untouched. 409 (naming them) while enabled schedules use the name, unless force=true, which disables them',
          parameters: [
            { name: 'name', in: 'path', required: true, schema: { type: 'string' } },
            { name: 'force', in: 'query', schema: { type: 'boolean' } },
          ],
          responses: { 200: json({ type: 'object' }), ...errors },
        },
      },
      '/v1/jobs': { get: { summary: 'list jobs', parameters: [{ name: 'kind', in: 'query', schema: { type: 'string' } }, { name: 'state', in: 'query', schema: { type: 'string' } }], responses: { 200: json({ type: 'object' }), ...errors } } },
      '/v1/jobs/{id}': { get: { summary: 'one job', parameters: [idPath], responses: { 200: json({ type: 'object', properties: { job } }), ...errors } } },
      '/v1/jobs/{id}/cancel': { post: { summary: 'cancel a job (operator)', parameters: [idPath], responses: { 202: json({ type: 'object', properties: { job } }), ...errors } } },
      '/v1/jobs/{id}/events': { get: { summary: "server-sent events: the job's record on every change until it ends", parameters: [idPath], responses: { 200: { description: 'text/event-stream' } } } },
    },
  };
}
