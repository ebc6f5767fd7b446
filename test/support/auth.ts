/** The admin key every test service is started with (BOOTSTRAP_API_KEY): tenant "default", every scope. */
export const TEST_ADMIN_KEY = "vg_test_admin_key_not_a_secret_0123456789";
export const ADMIN_AUTH = { authorization: `Bearer ${TEST_ADMIN_KEY}` } as const;
