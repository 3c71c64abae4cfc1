# csfuse in a container: headless, on Mesa's lavapipe (software Vulkan) or, with the NVIDIA
# container toolkit (`docker run --gpus all`), on the host's NVIDIA GPU through its Vulkan ICD.
#   docker build -t csfuse .
#   docker run --rm -v "$PWD:/data" csfuse fuse ct.png mr.png -o fused.png
#   docker run --rm --gpus all -v "$PWD:/data" csfuse devices

FROM rust:1-bookworm AS build
# cmake builds CharLS, the JPEG-LS decoder of the `jpegls` feature (the image has a C++ compiler).
RUN apt-get update && apt-get install -y --no-install-recommends cmake && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --features jpegls && strip target/release/csfuse

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends mesa-vulkan-drivers libvulkan1 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/csfuse /usr/local/bin/csfuse
# "graphics" makes the toolkit mount the driver's Vulkan ICD; "compute" its compute libraries.
ENV NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,graphics,utility
RUN useradd --create-home csfuse
USER csfuse
WORKDIR /data
ENTRYPOINT ["csfuse"]
CMD ["--help"]
