// An rtnetlink socket in the node's namespace or inside a pod's, through libc (bun:ffi).
// In-process netlink replaces the two `ip -batch` processes ADD used to spawn (measured:
// ~3 ms each on top of the plugin's own start) and removes iproute2 from what the node needs.
import { Errno, SysError, check, cstr, errno, libc, strerror } from '../sys/libc.ts';
import {
  NLMSG_DONE,
  NLMSG_ERROR,
  NLM_F_DUMP,
  errorCode,
  message,
  parseAddr,
  parseLink,
  parseRoute,
  splitMessages,
  dumpAddrs,
  dumpLinks,
  dumpRoutes,
  getLink,
  type Addr,
  type Link,
  type RawMessage,
  type Request,
  type RouteEntry,
} from './wire.ts';

const AF_NETLINK = 16;
const SOCK_RAW = 3;
const SOCK_CLOEXEC = 0x80000;
const NETLINK_ROUTE = 0;
const O_RDONLY = 0;
const O_CLOEXEC = 0x80000;
const CLONE_NEWNET = 0x40000000;

/** Opens a network namespace file (what CNI_NETNS names). */
export function openNetns(path: string): number {
  return check(libc().open(cstr(path), O_RDONLY | O_CLOEXEC, 0) as number, `open ${path}`);
}

export function closeFd(fd: number): void {
  libc().close(fd);
}

export class Netlink {
  private seq = 1;
  private readonly buf = new Uint8Array(1 << 16);

  private constructor(private readonly fd: number) {}

  /** A socket in the calling process's own namespace (the node's). */
  static here(): Netlink {
    return new Netlink(check(libc().socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE) as number, 'netlink socket'));
  }

  /**
   * A socket inside another namespace: the thread enters it only for socket() (a netlink
   * socket stays bound to the namespace it was created in) and returns at once.
   */
  static inside(netnsFd: number): Netlink {
    const c = libc();
    const home = check(c.open(cstr('/proc/thread-self/ns/net'), O_RDONLY | O_CLOEXEC, 0) as number, 'open own netns');
    try {
      check(c.setns(netnsFd, CLONE_NEWNET) as number, 'setns into the pod netns');
      const fd = c.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE) as number;
      const socketErrno = fd < 0 ? errno() : 0;
      if ((c.setns(home, CLONE_NEWNET) as number) < 0) {
        // Never carry on in the wrong namespace.
        throw new SysError(errno(), `cannot return to the node netns: ${strerror(errno())}`);
      }
      if (fd < 0) throw new SysError(socketErrno, `netlink socket in pod netns: ${strerror(socketErrno)}`);
      return new Netlink(fd);
    } finally {
      c.close(home);
    }
  }

  close(): void {
    libc().close(this.fd);
  }

  private send(req: Request): number {
    const seq = this.seq++;
    const msg = message(req.type, req.flags, seq, ...req.body);
    check(libc().send(this.fd, msg, msg.length, 0) as number, 'netlink send');
    return seq;
  }

  private *receive(seq: number): Generator<RawMessage> {
    const c = libc();
    for (;;) {
      const n = c.recv(this.fd, this.buf, this.buf.length, 0) as number;
      if (n < 0) {
        if (errno() === Errno.EINTR) continue;
        check(n, 'netlink recv');
      }
      for (const m of splitMessages(this.buf.subarray(0, n))) if (m.seq === seq) yield m;
    }
  }

  /** Sends a request that answers with an ACK; throws SysError with the kernel's errno. */
  do(req: Request): void {
    const seq = this.send(req);
    for (const m of this.receive(seq)) {
      if (m.type !== NLMSG_ERROR) continue;
      const code = errorCode(m.payload);
      if (code === 0) return;
      throw new SysError(code, strerror(code));
    }
  }

  /** A get (one answer) or a dump (answers until DONE); payloads copied out of the buffer. */
  query(req: Request): Uint8Array[] {
    const seq = this.send(req);
    const dump = (req.flags & NLM_F_DUMP) === NLM_F_DUMP;
    const out: Uint8Array[] = [];
    for (const m of this.receive(seq)) {
      if (m.type === NLMSG_ERROR) {
        const code = errorCode(m.payload);
        if (code === 0 && !dump) return out;
        throw new SysError(code, strerror(code));
      }
      if (m.type === NLMSG_DONE) return out;
      out.push(m.payload.slice());
      if (!dump) return out;
    }
    return out;
  }

  /** The link called `name`, or undefined. */
  link(name: string): Link | undefined {
    try {
      const [p] = this.query(getLink(name));
      return p ? parseLink(p) : undefined;
    } catch (e) {
      if (e instanceof SysError && e.errno === Errno.ENODEV) return undefined;
      throw e;
    }
  }

  links(): Link[] {
    return this.query(dumpLinks()).map(parseLink);
  }

  addrs(): Addr[] {
    return this.query(dumpAddrs()).map(parseAddr);
  }

  routes(family: number): RouteEntry[] {
    return this.query(dumpRoutes(family)).map(parseRoute);
  }
}
