// A partial copy of the repository at the commit being rendered, on disk under a render directory, with the
// repository's layout (so that relative paths between directories, `../base`, `file://../common`, resolve as they
// do in a checkout). Only what an engine asks for is copied: `from`, and the directories and files its sources
// refer to. Every listing is recursive and complete, so a directory read once answers for everything under it.
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { SourceFile, SourceReader } from './engine';

export type Listing = readonly SourceFile[] | 'missing' | 'not-a-directory';

export class SourceTree {
  private readonly listings = new Map<string, Listing>();
  private readonly written = new Set<string>();

  /** `root` is the directory that stands for the repository root. */
  constructor(
    readonly root: string,
    private readonly reader: SourceReader,
  ) {}

  /** The on-disk path of a repository path. */
  pathOf(path: string): string {
    return path === '' ? this.root : join(this.root, path);
  }

  /** Copies `files` as the whole content of `dir`: sources already read (and edited), e.g. `from`. */
  async addDirectory(dir: string, files: readonly SourceFile[]): Promise<void> {
    this.listings.set(dir, files);
    await this.writeAll(dir, files);
  }

  /** The files under `dir` (relative to it), from a listing already made when one covers it. */
  async list(dir: string): Promise<Listing> {
    const known = this.fromKnownListing(dir);
    if (known !== undefined) return known;
    const listed = await this.reader.list(dir);
    this.listings.set(dir, listed);
    return listed;
  }

  /** Copies the directory `dir` and everything under it; returns its listing. */
  async copyDirectory(dir: string): Promise<Listing> {
    const listed = await this.list(dir);
    if (typeof listed !== 'string') await this.writeAll(dir, listed);
    return listed;
  }

  /** Copies one file; returns its content, or undefined when there is no such file at the commit. */
  async copyFile(path: string): Promise<Buffer | undefined> {
    const slash = path.lastIndexOf('/');
    const parent = slash < 0 ? '' : path.slice(0, slash);
    const listed = await this.list(parent);
    if (typeof listed === 'string') return undefined;
    const name = slash < 0 ? path : path.slice(slash + 1);
    const file = listed.find((f) => f.path === name);
    if (!file) return undefined;
    await this.write(path, file.content);
    return file.content;
  }

  /** Removes a copied file or directory (e.g. a vendored chart that a `file://` dependency replaces). */
  async remove(path: string): Promise<void> {
    await rm(this.pathOf(path), { recursive: true, force: true });
    for (const written of [...this.written]) {
      if (written === path || written.startsWith(`${path}/`)) this.written.delete(written);
    }
  }

  private fromKnownListing(dir: string): Listing | undefined {
    const exact = this.listings.get(dir);
    if (exact !== undefined) return exact;
    for (const [known, listed] of this.listings) {
      if (typeof listed === 'string') continue;
      if (known !== '' && !dir.startsWith(`${known}/`)) continue;
      const prefix = `${known === '' ? dir : dir.slice(known.length + 1)}/`;
      const under = listed
        .filter((f) => f.path.startsWith(prefix))
        .map((f) => ({ path: f.path.slice(prefix.length), content: f.content }));
      if (under.length > 0) return under;
      return listed.some((f) => f.path === prefix.slice(0, -1)) ? 'not-a-directory' : 'missing';
    }
    return undefined;
  }

  private async writeAll(dir: string, files: readonly SourceFile[]): Promise<void> {
    for (const file of files) await this.write(dir === '' ? file.path : `${dir}/${file.path}`, file.content);
  }

  private async write(path: string, content: Buffer): Promise<void> {
    if (this.written.has(path)) return;
    this.written.add(path);
    const target = this.pathOf(path);
    await mkdir(dirname(target), { recursive: true });
    await writeFile(target, content);
  }
}
