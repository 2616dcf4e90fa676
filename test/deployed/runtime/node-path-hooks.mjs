/**
 * Module resolution hooks that give ES modules what the Lambda Node.js runtimes (18.x and later) give
 * them: a bare specifier that the usual node_modules walk does not find is looked up in each NODE_PATH
 * folder, in order, as CommonJS `require` does, with the ES module resolver's rules (package.json
 * "exports" and "main"). Only a package directly in the folder counts, not one in the folder's parents.
 * Packages live in the `node_modules` folders of Lambda's NODE_PATH; its other entries (/var/runtime,
 * /var/task) hold files that a bare ES module specifier cannot name.
 */
import path from 'node:path';
import process from 'node:process';
import { fileURLToPath, pathToFileURL } from 'node:url';

const folders = (process.env.NODE_PATH ?? '').split(path.delimiter).filter(Boolean);

function isBare(specifier) {
  return !/^(?:\.{0,2}\/|#|[a-z][a-z0-9+.-]*:)/i.test(specifier);
}

export async function resolve(specifier, context, nextResolve) {
  try {
    return await nextResolve(specifier, context);
  } catch (error) {
    if (error?.code !== 'ERR_MODULE_NOT_FOUND' || !isBare(specifier)) throw error;
    for (const folder of folders) {
      if (path.basename(folder) !== 'node_modules') continue;
      // A parent module beside the folder makes the resolver look in the folder first.
      const parentURL = pathToFileURL(path.join(path.dirname(folder), '__node_path__.mjs')).href;
      let resolved;
      try {
        resolved = await nextResolve(specifier, { ...context, parentURL });
      } catch (notHere) {
        if (notHere?.code === 'ERR_MODULE_NOT_FOUND') continue;
        throw notHere;
      }
      const file = resolved.url.startsWith('file:') ? fileURLToPath(resolved.url) : '';
      if (file.startsWith(folder + path.sep)) return resolved;
    }
    throw error;
  }
}
