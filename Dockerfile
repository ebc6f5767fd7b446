# The API. Build: docker build -t videograph-api .
FROM node:24-bookworm-slim AS build
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
# ffmpeg cuts thumbnails and animated previews from published HLS on request (src/http/video-images.ts).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/src ./src
COPY --from=build /app/console/dist ./console/dist
COPY package.json ./
COPY prisma/migrations ./prisma/migrations
RUN mkdir -p /data && chown node:node /data
USER node
EXPOSE 4000
CMD ["node", "src/main.ts"]
