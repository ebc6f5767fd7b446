# The API. Build: docker build -t videograph-api .
FROM node:24-bookworm-slim AS build
# The SRT ingest's gateway is compiled against Debian's libsrt and GnuTLS (postinstall: scripts/setup-srt.sh; libsrt-gnutls-dev brings both).
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev pkg-config libsrt-gnutls-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# `npm ci` generates the Prisma client and builds the console (postinstall), so their sources come first.
COPY package.json package-lock.json prisma.config.ts ./
COPY prisma ./prisma
COPY src ./src
COPY scripts ./scripts
COPY schema ./schema
COPY console ./console
RUN npm ci --no-audit --no-fund && npm prune --omit=dev

FROM node:24-bookworm-slim
ENV NODE_ENV=production PORT=4000 LOCAL_WORKER=false
# ffmpeg cuts thumbnails and animated previews from published HLS on request (src/http/video-images.ts)
# and remuxes SRT callers' MPEG-TS (src/live/srt-ingest.ts); it brings libsrt1.5-gnutls and GnuTLS, the gateway's libraries.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/src ./src
COPY --from=build /app/console/dist ./console/dist
COPY --from=build /app/.tools/srt-gateway/srt-gateway ./.tools/srt-gateway/srt-gateway
COPY package.json ./
COPY prisma/migrations ./prisma/migrations
RUN mkdir -p /data && chown node:node /data
USER node
# HTTP; RTMP ingest; SRT ingest (UDP).
EXPOSE 4000 1935 9000/udp
# The Node flags are src/node-flags.ts' (a smaller young generation: less memory under many subscribers).
CMD ["node", "--max-semi-space-size=32", "src/main.ts"]
