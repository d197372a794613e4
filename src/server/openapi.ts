/**
 * The OpenAPI 3.1 document served at /openapi.json, generated from the route table
 * (routes/table.ts) and the zod schemas of schemas.ts: every schema schemas.ts exports is a
 * component under its export name, and each route refers to its body and answers by $ref, so
 * the document cannot describe a route or a field the server does not have.
 */
import { z } from 'zod';
import * as schemas from './schemas.js';
import { ERROR_STATUS, ROUTES, type ErrorStatus, type RawAnswer, type RouteSpec } from './routes/table.js';

const ref = (id: string): string => `#/components/schemas/${id}`;

/** A JSON Schema without the keywords that only a stand-alone document carries. */
function bare(schema: Record<string, unknown>): Record<string, unknown> {
  const { $schema: _s, $id: _i, ...rest } = schema;
  return rest;
}

/** Every exported schema of schemas.ts as a component, by its export name. */
function components(): { registry: z.core.$ZodRegistry<{ id: string }>; schemas: Record<string, unknown> } {
  const registry = z.registry<{ id: string }>();
  for (const [id, value] of Object.entries(schemas)) if (value instanceof z.ZodType) registry.add(value, { id });
  const converted = z.toJSONSchema(registry, {
    uri: ref,
    // Bodies are described as clients send them (before preprocessing).
    io: 'input',
    unrepresentable: 'any',
    override: (ctx) => {
      const documented = schemas.DOCUMENTED_AS.get(ctx.zodSchema);
      if (!documented) return;
      for (const key of Object.keys(ctx.jsonSchema)) delete (ctx.jsonSchema as Record<string, unknown>)[key];
      Object.assign(ctx.jsonSchema, documented);
    },
  });
  return { registry, schemas: Object.fromEntries(Object.entries(converted.schemas).map(([id, s]) => [id, bare(s as Record<string, unknown>)])) };
}

/** `{ $ref }` to a route's schema; a schema not exported from schemas.ts is a programming error. */
function refTo(registry: z.core.$ZodRegistry<{ id: string }>, schema: z.ZodType, where: string): { $ref: string } {
  const id = registry.get(schema)?.id;
  if (!id) throw new Error(`${where}: its schema is not exported from src/server/schemas.ts, so it has no name in /openapi.json.`);
  return { $ref: ref(id) };
}

/** Path and query parameters of a route, one per property of its params / query schemas. */
function parameters(id: string, spec: RouteSpec): Record<string, unknown>[] {
  const inPath = [...spec.path.matchAll(/:([A-Za-z0-9_]+)/g)].map((m) => m[1]);
  const declared = Object.keys(spec.params?.shape ?? {});
  if (inPath.join() !== declared.join()) throw new Error(`route ${id}: path ${spec.path} has parameters [${inPath.join()}] but params declares [${declared.join()}].`);
  const each = (where: 'path' | 'query', shape: Record<string, z.ZodType>) =>
    Object.entries(shape).map(([name, schema]) => {
      const { description, ...json } = bare(z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>);
      return { name, in: where, required: where === 'path' || !schema.safeParse(undefined).success, ...(description ? { description } : {}), schema: json };
    });
  return [...each('path', (spec.params?.shape ?? {}) as Record<string, z.ZodType>), ...each('query', (spec.query?.shape ?? {}) as Record<string, z.ZodType>)];
}

function operation(registry: z.core.$ZodRegistry<{ id: string }>, id: string, spec: RouteSpec): Record<string, unknown> {
  const json = (schema: z.ZodType, where: string) => ({ 'application/json': { schema: refTo(registry, schema, where) } });
  const answers = Object.entries(spec.answers).map(([status, answer]) => [
    status,
    answer instanceof z.ZodType
      ? { description: 'ok', content: json(answer, `route ${id}, answer ${status}`) }
      : { description: (answer as RawAnswer).description, content: { [(answer as RawAnswer).mediaType]: { schema: { type: 'string' } } } },
  ]);
  const errors = spec.errors.map((status: ErrorStatus) => [String(status), { $ref: `#/components/responses/${errorName(status)}` }]);
  const params = parameters(id, spec);
  return {
    operationId: id,
    summary: spec.summary,
    description: spec.role ? `Role: ${spec.role} or above.` : 'No token needed.',
    tags: [spec.path.startsWith('/v1/') ? spec.path.split('/')[2] : 'server'],
    'x-cairn-role': spec.role ?? 'none',
    ...(spec.role ? {} : { security: [] }),
    ...(params.length ? { parameters: params } : {}),
    ...(spec.body ? { requestBody: { required: true, content: json(spec.body, `route ${id}, body`) } } : {}),
    ...(spec.upload ? { requestBody: { required: true, description: spec.upload.description, content: { [spec.upload.mediaType]: { schema: { type: 'string', format: 'binary' } } } } } : {}),
    responses: Object.fromEntries([...answers, ...errors]),
  };
}

/** The shared error answers, one per status (components.responses). */
const errorName = (status: ErrorStatus): string => `Error${status}`;
function errorAnswers(registry: z.core.$ZodRegistry<{ id: string }>): Record<string, unknown> {
  const schema = refTo(registry, schemas.ErrorAnswer, 'errors');
  return Object.fromEntries(
    (Object.keys(ERROR_STATUS).map(Number) as ErrorStatus[]).map((status) => [errorName(status), { description: ERROR_STATUS[status], content: { 'application/json': { schema } } }]),
  );
}

let generated: Record<string, unknown> | undefined;

/**
 * The document (generated once, then the same object): OpenAPI 3.1, JSON Schema 2020-12.
 * Throws when the route table refers to a schema schemas.ts does not export, or a route's
 * params do not match its path.
 */
export function openApiDocument(): Record<string, unknown> {
  if (generated) return generated;
  const { registry, schemas: componentSchemas } = components();
  const paths: Record<string, Record<string, unknown>> = {};
  for (const [id, spec] of Object.entries(ROUTES) as [string, RouteSpec][]) {
    const path = spec.path.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
    (paths[path] ??= {})[spec.method] = operation(registry, id, spec);
  }
  generated = {
    openapi: '3.1.0',
    info: {
      title: 'cairn',
      version: '0.1.0',
      description: 'Backup and restore jobs. Authenticate with Authorization: Bearer <token>. Generated from the route table (src/server/routes/table.ts); docs/api.md is the prose version.',
    },
    jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
    components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } }, schemas: componentSchemas, responses: errorAnswers(registry) },
    security: [{ bearer: [] }],
    paths,
  };
  return generated;
}
