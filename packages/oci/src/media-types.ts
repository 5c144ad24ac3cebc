/** Media types of OCI (and the Docker v2 schema 2 equivalents registries still serve). */
export const MediaTypes = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar',
  ociEmpty: 'application/vnd.oci.empty.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
} as const;

/** Media types of image manifests (one platform). */
export const manifestMediaTypes: readonly string[] = [MediaTypes.ociManifest, MediaTypes.dockerManifest];

/** Media types of image indexes (several platforms). */
export const indexMediaTypes: readonly string[] = [MediaTypes.ociIndex, MediaTypes.dockerManifestList];

/** Every manifest-like media type a registry serves from /manifests. */
export const allManifestMediaTypes: readonly string[] = [...manifestMediaTypes, ...indexMediaTypes];

/** The Accept header a client sends to get any manifest kind. */
export const MANIFEST_ACCEPT = allManifestMediaTypes.join(', ');

/** True for gzip-compressed layer media types. */
export function isGzipLayer(mediaType: string): boolean {
  return mediaType === MediaTypes.ociLayerGzip || mediaType === MediaTypes.dockerLayerGzip;
}
