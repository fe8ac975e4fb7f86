# syntax=docker/dockerfile:1
# Build: docker build -t mcp-oauth-operator .
FROM rust:1.95-bookworm AS build
WORKDIR /src
# Dependencies first, so source edits do not rebuild them.
COPY Cargo.toml Cargo.lock ./
# The test harness is a workspace member: its manifest (and an empty library) keep the workspace
# loadable; the release binary does not depend on it.
COPY testkit/Cargo.toml testkit/
RUN mkdir -p src benches testkit/src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && touch testkit/src/lib.rs \
    && for b in $(awk '/^\[\[bench\]\]/{getline; gsub(/name = |"/,""); print}' Cargo.toml); do \
         echo 'fn main() {}' > "benches/$b.rs"; done \
    && cargo build --release --locked --bin mcp-oauth-operator || true
COPY src ./src
COPY examples ./examples
COPY benches ./benches
RUN touch src/main.rs src/lib.rs && cargo build --release --locked --bin mcp-oauth-operator

# Minimal runtime: glibc, CA certificates, non-root user, no shell.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/mcp-oauth-operator /usr/local/bin/mcp-oauth-operator
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/mcp-oauth-operator"]
# The operator by default; `serve --listen 0.0.0.0:8080 --manifests DIR` runs it standalone.
CMD ["run"]
