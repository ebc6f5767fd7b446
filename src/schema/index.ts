import { builder } from "../builder.ts";
import { withDeclaredMutationWork } from "../jobs/mutation-work.ts";
import "./scalars.ts";
import "./errors.ts";
import "./job.ts";
import "./variant.ts";
import "./upload.ts";
import "./video-events.ts";
import "./video.ts";
import "./cms-fields.ts";
import "./segment-format.ts";
import "./storyboard.ts";
import "./rendered-video.ts";
import "./manim.ts";
import "./url-import.ts";
import "./asset.ts";
import "./caption.ts";
import "./composition.ts";
import "./webhook.ts";
import "./queue-position.ts";
import "./cost.ts";
import "./clip.ts";
import "./static-rendition.ts";

builder.queryType({});
builder.mutationType({});
builder.subscriptionType({});

export const schema = withDeclaredMutationWork(builder.toSchema({ sortSchema: true }));
