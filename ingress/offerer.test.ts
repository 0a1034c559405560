import { describe, expect, it } from 'vitest';
import { reachableIceServers } from './offerer.ts';

describe('reachableIceServers', () => {
  const turn = { urls: ['turn:127.0.0.1:3478?transport=udp', 'turn:turn.example.net:3478'], username: '1700003600:p', credential: 'c' };

  it('keeps only loopback servers for a loopback-only ingress, and names the others', () => {
    const result = reachableIceServers([{ urls: 'stun:stun.example.net' }, turn, { urls: ['stun:localhost:3478', 'stun:[::1]'] }], ['127.0.0.1']);
    expect(result.servers).toEqual([
      { urls: ['turn:127.0.0.1:3478?transport=udp'], username: '1700003600:p', credential: 'c' },
      { urls: ['stun:localhost:3478', 'stun:[::1]'] },
    ]);
    expect(result.dropped).toEqual(['stun:stun.example.net', 'turn:turn.example.net:3478']);
  });

  it('keeps every server for an ingress with a public address', () => {
    const servers = [{ urls: 'stun:stun.example.net' }, turn];
    expect(reachableIceServers(servers, ['203.0.113.7'])).toEqual({ servers, dropped: [] });
  });

  it('keeps every server once any advertised address is not loopback (dcdn ingress --ice-address)', () => {
    const servers = [{ urls: 'stun:stun.example.net' }, turn];
    expect(reachableIceServers(servers, ['127.0.0.1', '203.0.113.7'])).toEqual({ servers, dropped: [] });
    expect(reachableIceServers(servers, ['2001:db8::7'])).toEqual({ servers, dropped: [] });
  });

  it('treats IPv6 and other 127/8 addresses as loopback too', () => {
    expect(reachableIceServers([{ urls: 'stun:stun.example.net' }, { urls: 'stun:127.0.0.2:3478' }], ['::1', '127.0.0.2'])).toEqual({
      servers: [{ urls: ['stun:127.0.0.2:3478'] }],
      dropped: ['stun:stun.example.net'],
    });
  });

  it('treats the default advertised address as loopback', () => {
    expect(reachableIceServers([{ urls: 'stun:192.0.2.10' }]).servers).toEqual([]);
  });
});
