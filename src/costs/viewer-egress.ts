import type pg from "pg";
import { variantBitRateSql } from "./variant-bit-rate.ts";

/**
 * Bytes viewers fetched, estimated from what players reported (docs/analytics.md, "Egress"): time watched at
 * each height times that rung's `variantBitRate`, plus time watched times the audio rung's. Only players that
 * send beacons count; a height no rung has is left out. Reads the tenant's hour rows of the period only.
 */
export async function viewerEgressBytes(
  pool: pg.Pool,
  tenantId: string,
  from: Date,
  to: Date,
): Promise<Map<string, number>> {
  const { rows } = await pool.query<{ videoId: string; bytes: number }>(
    `SELECT "videoId", SUM(bytes)::float8 AS bytes FROM (
       SELECT h."videoId", h."watchMs"::float8 / 1000 * ${variantBitRateSql("v")} / 8 AS bytes
         FROM "AnalyticsHeightHour" h
         JOIN "Variant" v ON v."videoId" = h."videoId" AND v.kind = 'VIDEO' AND v.height = h.height
        WHERE h."tenantId" = $1::uuid AND h.hour >= ($2::timestamptz AT TIME ZONE 'UTC')
          AND h.hour < ($3::timestamptz AT TIME ZONE 'UTC')
       UNION ALL
       SELECT a."videoId", a."watchMs"::float8 / 1000 * ${variantBitRateSql("v")} / 8 AS bytes
         FROM "AnalyticsHour" a
         JOIN "Variant" v ON v."videoId" = a."videoId" AND v.kind = 'AUDIO'
        WHERE a."tenantId" = $1::uuid AND a.hour >= ($2::timestamptz AT TIME ZONE 'UTC')
          AND a.hour < ($3::timestamptz AT TIME ZONE 'UTC')
     ) watched
     GROUP BY "videoId"`,
    // The hours are stored as UTC without a zone (Prisma's DateTime), as figures.ts reads them.
    [tenantId, from.toISOString(), to.toISOString()],
  );
  return new Map(rows.map((r) => [r.videoId, r.bytes]));
}
