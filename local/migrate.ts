/**
 * Applies local/supabase-bootstrap.sql, then every supabase/migrations file not yet in
 * supabase_migrations.schema_migrations (the Supabase CLI's ledger), each in its own
 * transaction, in file-name order.
 */
import postgres from "postgres";

const ROOT = new URL("../", import.meta.url);
const MIGRATION_NAME = /^(\d{14})_(.+)\.sql$/;

export function migrationFiles() {
  const dir = new URL("supabase/migrations/", ROOT);
  return [...Deno.readDirSync(dir)]
    .map((entry) => MIGRATION_NAME.exec(entry.name))
    .filter((match): match is RegExpExecArray => match !== null)
    .map(([file, version, name]) => ({ file: new URL(file, dir), version, name }))
    .sort((a, b) => a.version.localeCompare(b.version));
}

/** Returns how many migrations it applied, and whether the database was empty before. */
export async function migrate(databaseUrl: string, log: (line: string) => void) {
  const sql = postgres(databaseUrl, { max: 1, onnotice: () => {} });
  try {
    await sql.unsafe(Deno.readTextFileSync(new URL("local/supabase-bootstrap.sql", ROOT)));
    const applied = new Set(
      (await sql<{ version: string }[]>`select version from supabase_migrations.schema_migrations`)
        .map((row) => row.version),
    );
    const pending = migrationFiles().filter((m) => !applied.has(m.version));
    for (const migration of pending) {
      const text = Deno.readTextFileSync(migration.file);
      await sql.begin(async (tx) => {
        await tx.unsafe(text);
        await tx`
          insert into supabase_migrations.schema_migrations (version, name, statements)
          values (${migration.version}, ${migration.name}, ${[text]})
        `;
      });
      log(`applied migration ${migration.version}_${migration.name}`);
    }
    return { applied: pending.length, wasEmpty: applied.size === 0 };
  } finally {
    await sql.end();
  }
}

export async function runSqlFile(databaseUrl: string, path: URL) {
  const sql = postgres(databaseUrl, { max: 1, onnotice: () => {} });
  try {
    await sql.begin((tx) => tx.unsafe(Deno.readTextFileSync(path)));
  } finally {
    await sql.end();
  }
}
