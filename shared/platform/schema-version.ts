/**
 * The newest migration this code needs. /v1/ready fails until the database has it; a test
 * keeps it equal to the newest file in supabase/migrations.
 */
export const REQUIRED_MIGRATION = "20261202000300";
