// The few Bun APIs the plugin uses, typed here because the project's tsconfig only loads
// Node's types (the plugin is compiled by `bun build`, everything else runs on Node).
declare module 'bun:ffi' {
  export const FFIType: { readonly i32: number; readonly u64: number; readonly ptr: number; readonly cstring: number };
  export function dlopen<T extends Record<string, { args: number[]; returns: number }>>(
    path: string,
    symbols: T,
  ): { symbols: { [K in keyof T]: (...args: (number | Uint8Array)[]) => unknown }; close(): void };
  export const read: { i32(ptr: number, offset?: number): number };
}

declare const Bun: {
  spawnSync(options: { cmd: string[]; stdin?: Uint8Array; stdout?: 'pipe'; stderr?: 'pipe'; env?: Record<string, string | undefined> }): {
    exitCode: number | null;
    stdout: { toString(): string };
    stderr: { toString(): string };
  };
};
