/**
 * Which hosts a pull may download from. An entry is `host` (any port), `host:port` (that port only)
 * or `*.domain` (any subdomain of it).
 */
export class AllowedHosts {
  constructor(private readonly entries: readonly string[]) {}

  allows(url: URL): boolean {
    const hostname = url.hostname.toLowerCase();
    const hostPort = `${hostname}:${url.port || (url.protocol === 'https:' ? '443' : '80')}`;
    return this.entries.some((raw) => {
      const entry = raw.toLowerCase();
      if (entry.startsWith('*.')) return hostname.endsWith(entry.slice(1));
      return entry.includes(':') ? entry === hostPort || entry === url.host.toLowerCase() : entry === hostname;
    });
  }
}
