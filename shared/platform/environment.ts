/**
 * The two environments every row and caller belongs to: `live` (production data, `bv_live_`
 * keys and signed-in users) and `test` (the sandbox, `bv_test_` keys). Row-level security
 * keeps them apart.
 */
export const ENVIRONMENTS = ["live", "test"] as const;
export type Environment = typeof ENVIRONMENTS[number];
