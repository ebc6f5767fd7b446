// Prepares an S3-compatible bucket for STORAGE=s3 (`npm run setup:s3`); safe to run again.
//  1. the bucket, unless it exists,
//  2. its CORS: browsers fetch segments and posters (GET by presigned URL) cross-origin,
//  3. a lifecycle rule that aborts multipart uploads left unfinished under videos/ (their parts are
//     stored and billed until then) a day after upload URLs expire.
// Reads S3_BUCKET (required), S3_ENDPOINT, S3_REGION, S3_FORCE_PATH_STYLE, UPLOAD_URL_TTL_SECONDS,
// S3_CORS_ORIGINS (comma-separated, default *); credentials: S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY,
// else the SDK's default chain.
import {
  CreateBucketCommand,
  HeadBucketCommand,
  PutBucketCorsCommand,
  PutBucketLifecycleConfigurationCommand,
  type BucketLocationConstraint,
} from "@aws-sdk/client-s3";
import { parseCommandLine } from "../src/shared/command-line.ts";
import { missingS3KeyHalf, S3_KEY_PAIR_RULE, s3CredentialsOf } from "../src/shared/env.ts";

parseCommandLine(
  `usage: npm run setup:s3
Prepares an S3-compatible bucket for STORAGE=s3: creates it unless it exists, sets its CORS and a
rule that aborts unfinished multipart uploads; safe to run again. Reads S3_BUCKET (required),
S3_ENDPOINT, S3_REGION, S3_FORCE_PATH_STYLE, UPLOAD_URL_TTL_SECONDS, S3_CORS_ORIGINS; credentials:
S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY, else the AWS SDK's default chain (AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_PROFILE, …).`,
  {},
);
// The S3 client is imported once the command line is read: --help needs none of it.
const { createS3Client } = await import("../src/shared/s3-client.ts");

const bucket = process.env.S3_BUCKET;
if (!bucket) {
  console.error("S3_BUCKET is required");
  process.exit(2);
}
const region = process.env.S3_REGION || "us-east-1";
const endpoint = process.env.S3_ENDPOINT || undefined;
const forcePathStyle = ["true", "1"].includes(process.env.S3_FORCE_PATH_STYLE ?? "");
const corsOrigins = (process.env.S3_CORS_ORIGINS || "*")
  .split(",")
  .map((o) => o.trim())
  .filter(Boolean);
const abortAfterDays = Math.ceil(Number(process.env.UPLOAD_URL_TTL_SECONDS || 86_400) / 86_400) + 1;

const keyPair = {
  S3_ACCESS_KEY_ID: process.env.S3_ACCESS_KEY_ID || undefined,
  S3_SECRET_ACCESS_KEY: process.env.S3_SECRET_ACCESS_KEY || undefined,
};
// As the API and the worker refuse it: half a key pair would quietly fall back to another identity.
if (missingS3KeyHalf(keyPair)) {
  console.error(`${S3_KEY_PAIR_RULE}: set both, or neither for the AWS SDK's chain`);
  process.exit(2);
}
const credentials = s3CredentialsOf(keyPair);
const client = createS3Client({ endpoint, region, forcePathStyle, credentials });
const say = (what: string) => console.log(`  ${what}`);

try {
  console.log(`S3 bucket ${bucket}${endpoint ? ` at ${endpoint}` : ""} (${region}):`);
  try {
    await client.send(new HeadBucketCommand({ Bucket: bucket }));
    say("exists   bucket");
  } catch (err) {
    if ((err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode !== 404) throw err;
    // us-east-1 takes no location constraint; R2 ("auto") and most other services ignore it.
    const location =
      region === "us-east-1" || region === "auto"
        ? undefined
        : { LocationConstraint: region as BucketLocationConstraint };
    await client.send(new CreateBucketCommand({ Bucket: bucket, CreateBucketConfiguration: location }));
    say("created  bucket");
  }
  await client.send(
    new PutBucketCorsCommand({
      Bucket: bucket,
      CORSConfiguration: {
        CORSRules: [
          {
            AllowedOrigins: corsOrigins,
            AllowedMethods: ["GET", "HEAD"],
            AllowedHeaders: ["Range"],
            ExposeHeaders: ["Content-Length", "Content-Range", "Accept-Ranges", "ETag"],
            MaxAgeSeconds: 3600,
          },
        ],
      },
    }),
  );
  say(`set      CORS: ${corsOrigins.join(", ")} may GET and HEAD`);
  await client.send(
    new PutBucketLifecycleConfigurationCommand({
      Bucket: bucket,
      LifecycleConfiguration: {
        Rules: [
          {
            ID: "videograph-abort-unfinished-uploads",
            Status: "Enabled",
            Filter: { Prefix: "videos/" },
            AbortIncompleteMultipartUpload: { DaysAfterInitiation: abortAfterDays },
          },
        ],
      },
    }),
  );
  say(`set      lifecycle: unfinished multipart uploads under videos/ are aborted after ${abortAfterDays} days`);
} catch (err) {
  console.error(`setup:s3 failed: ${(err as Error).message}`);
  process.exitCode = 1;
} finally {
  client.destroy();
}
