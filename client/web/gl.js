// WebGL2 accelerator for the spinr forward pass (same maths as spnr.js's applyLayer, on the GPU).
//
// Activations live in RGBA32F 2D-array textures, one layer per 4 features, one texel per pixel;
// each linear layer is a fragment-shader pass per group of 4 output features. Needs WebGL2 and
// EXT_color_buffer_float (render to float textures). Use it through a ProgressiveDecoder:
//
//   const { accelerator, reason } = tryCreateWebGLAccelerator();
//   const dec = new ProgressiveDecoder({ accelerator });   // null accelerator -> plain JS
//   dec.decode(w, h);  dec.lastInfo.backend                 // "webgl2" or "js" (+ lastInfo.fallback)
//
// Any failure inside run() (lost context, incomplete framebuffer, GL error, limits) throws, and the
// decoder falls back to JS. Trunk activations of the deepest prefix are kept on the GPU per decoder,
// so adding a layer costs one layer pass, as in the JS path.

import { axisCoords } from "./codec/coords.js";
import { SpnrError, errorText } from "./codec/errors.js";
import { applyLayer } from "./codec/forward.js";

const VERTEX_SHADER = `#version 300 es
void main() {
  // one triangle covering the viewport: (-1,-1), (3,-1), (-1,3)
  vec2 p = vec2(float((gl_VertexID << 1) & 2), float(gl_VertexID & 2));
  gl_Position = vec4(p * 2.0 - 1.0, 0.0, 1.0);
}`;

const fragmentShader = (first) => `#version 300 es
${first ? "#define FIRST 1" : ""}
precision highp float;
precision highp int;
precision highp sampler2D;
precision highp sampler2DArray;
#ifdef FIRST
uniform sampler2D u_coords;   // R32F: row 0 x per column, row 1 y per row
#else
uniform sampler2DArray u_act; // RGBA32F: input features, 4 per layer
#endif
uniform sampler2D u_w;        // RGBA32F: texel (j, o) = W[o, 4j .. 4j+3], zero-padded
uniform sampler2D u_b;        // RGBA32F: texel (g, 0) = b[4g .. 4g+3], zero-padded
uniform int u_inGroups;
uniform int u_group;
uniform float u_omega;
uniform int u_mode;           // 0 linear, 1 sine, 2 residual sine
out vec4 o_val;

// sin(x) with our own argument reduction and polynomial: GPU sin() is allowed to be coarse (Vulkan
// and hence SwiftShader give ~2e-4 absolute error), far from the JS path's Math.sin.
// Cody-Waite reduction by pi: 3.140625 has 8 significant bits, so k * PI_HI is exact for |k| < 2^16;
// then sin(x) = (-1)^k sin(r) with |r| <= pi/2, a Taylor polynomial to r^15 (error < 1e-9).
const float INV_PI = 0.31830988618379067;
const float PI_HI = 3.140625;
const float PI_LO = 0.0009676535897932384;
float sinr(float x) {
  float k = floor(x * INV_PI + 0.5);
  float r = (x - k * PI_HI) - k * PI_LO;
  float r2 = r * r;
  float p = -7.647163731819816e-13;              // -1/15!
  p = p * r2 + 1.6059043836821613e-10;           //  1/13!
  p = p * r2 - 2.505210838544172e-08;            // -1/11!
  p = p * r2 + 2.7557319223985893e-06;           //  1/9!
  p = p * r2 - 0.0001984126984126984;            // -1/7!
  p = p * r2 + 0.008333333333333333;             //  1/5!
  p = p * r2 - 0.16666666666666666;              // -1/3!
  float s = r + r * r2 * p;
  return mod(k, 2.0) == 0.0 ? s : -s;
}

void main() {
  ivec2 p = ivec2(gl_FragCoord.xy);
  int o0 = u_group * 4;
  vec4 acc = vec4(0.0);
#ifdef FIRST
  vec4 a = vec4(texelFetch(u_coords, ivec2(p.x, 0), 0).r, texelFetch(u_coords, ivec2(p.y, 1), 0).r, 0.0, 0.0);
  acc = vec4(dot(texelFetch(u_w, ivec2(0, o0), 0), a), dot(texelFetch(u_w, ivec2(0, o0 + 1), 0), a),
             dot(texelFetch(u_w, ivec2(0, o0 + 2), 0), a), dot(texelFetch(u_w, ivec2(0, o0 + 3), 0), a));
#else
  for (int j = 0; j < u_inGroups; ++j) {
    vec4 a = texelFetch(u_act, ivec3(p, j), 0);
    acc.x += dot(texelFetch(u_w, ivec2(j, o0), 0), a);
    acc.y += dot(texelFetch(u_w, ivec2(j, o0 + 1), 0), a);
    acc.z += dot(texelFetch(u_w, ivec2(j, o0 + 2), 0), a);
    acc.w += dot(texelFetch(u_w, ivec2(j, o0 + 3), 0), a);
  }
#endif
  vec4 z = acc + texelFetch(u_b, ivec2(u_group, 0), 0);
  if (u_mode == 0) {
    o_val = z;
    return;
  }
  vec4 s = vec4(sinr(u_omega * z.x), sinr(u_omega * z.y), sinr(u_omega * z.z), sinr(u_omega * z.w));
#ifndef FIRST
  if (u_mode == 2) s += texelFetch(u_act, ivec3(p, u_group), 0);
#endif
  o_val = s;
}`;

/** Activation textures larger than this are refused (the decoder then falls back to JS). */
export const MAX_ACTIVATION_BYTES = 512 * 2 ** 20;

const groups = (f) => Math.ceil(f / 4);

/**
 * Whether this browser can run the accelerator, without keeping a context.
 * @returns {{ok: boolean, reason: string|null, renderer: string|null}}
 */
export function webgl2Support() {
  const r = tryCreateWebGLAccelerator();
  if (r.accelerator) {
    const renderer = r.accelerator.renderer;
    r.accelerator.dispose();
    return { ok: true, reason: null, renderer };
  }
  return { ok: false, reason: r.reason, renderer: null };
}

/**
 * Create the accelerator, or explain why not.
 * @param {object} [options]  see WebGLAccelerator
 * @returns {{accelerator: WebGLAccelerator|null, reason: string|null}}
 */
export function tryCreateWebGLAccelerator(options = {}) {
  try {
    return { accelerator: new WebGLAccelerator(options), reason: null };
  } catch (e) {
    return { accelerator: null, reason: errorText(e) };
  }
}

/** Runs ForwardJobs (see spnr.js) with WebGL2; implements the decoder's Accelerator interface. */
export class WebGLAccelerator {
  /**
   * @param {object} [options]
   * @param {HTMLCanvasElement|OffscreenCanvas} [options.canvas]  default: a new 1x1 canvas
   * @param {boolean} [options.selfTest=true]  compare a small forward pass with the JS one at start
   * @throws {SpnrError} WebGL2 or EXT_color_buffer_float unavailable, shaders fail, self-test fails
   */
  constructor({ canvas = undefined, selfTest = true } = {}) {
    /** Backend name reported in ProgressiveDecoder.lastInfo.backend. */
    this.name = "webgl2";
    if (canvas === undefined) {
      if (typeof OffscreenCanvas !== "undefined") canvas = new OffscreenCanvas(1, 1);
      else if (typeof document !== "undefined") canvas = document.createElement("canvas");
      else throw new SpnrError("WebGL2 unavailable: no canvas in this environment");
    }
    this.canvas = canvas;
    this.lost = false;
    this._onLost = (ev) => {
      ev.preventDefault();
      this.lost = true;
    };
    if (canvas.addEventListener) canvas.addEventListener("webglcontextlost", this._onLost);
    const gl = canvas.getContext("webgl2", {
      alpha: true, antialias: false, depth: false, stencil: false, premultipliedAlpha: false,
      preserveDrawingBuffer: false, powerPreference: "high-performance",
    });
    if (!gl) throw new SpnrError("WebGL2 unavailable: getContext('webgl2') returned null");
    this.gl = gl;
    if (!gl.getExtension("EXT_color_buffer_float")) {
      this.dispose();
      throw new SpnrError("WebGL2 lacks EXT_color_buffer_float: cannot render to float textures");
    }
    const dbg = gl.getExtension("WEBGL_debug_renderer_info");
    /** GPU description, for reports. */
    this.renderer = String(gl.getParameter(dbg ? dbg.UNMASKED_RENDERER_WEBGL : gl.RENDERER));
    this.maxTexture = gl.getParameter(gl.MAX_TEXTURE_SIZE);
    this.maxLayers = gl.getParameter(gl.MAX_ARRAY_TEXTURE_LAYERS);
    try {
      this.programs = [this._program(true), this._program(false)];
    } catch (e) {
      this.dispose();
      throw e;
    }
    this.vao = gl.createVertexArray();
    this.fbo = gl.createFramebuffer();
    this._weights = new WeakMap(); // Float32Array weight -> {w, b} textures
    this._cache = new WeakMap(); // owner -> {w, h, steps, tex}
    if (selfTest) {
      try {
        this._selfTest();
      } catch (e) {
        this.dispose();
        throw e instanceof SpnrError ? e : new SpnrError(`WebGL2 self-test failed: ${errorText(e)}`);
      }
    }
  }

  _program(first) {
    const gl = this.gl;
    const compile = (type, src) => {
      const s = gl.createShader(type);
      gl.shaderSource(s, src);
      gl.compileShader(s);
      if (!gl.getShaderParameter(s, gl.COMPILE_STATUS)) {
        const log = gl.getShaderInfoLog(s);
        gl.deleteShader(s);
        throw new SpnrError(`WebGL2 shader does not compile: ${log}`);
      }
      return s;
    };
    const vs = compile(gl.VERTEX_SHADER, VERTEX_SHADER);
    const fs = compile(gl.FRAGMENT_SHADER, fragmentShader(first));
    const prog = gl.createProgram();
    gl.attachShader(prog, vs);
    gl.attachShader(prog, fs);
    gl.linkProgram(prog);
    gl.deleteShader(vs);
    gl.deleteShader(fs);
    if (!gl.getProgramParameter(prog, gl.LINK_STATUS)) {
      throw new SpnrError(`WebGL2 program does not link: ${gl.getProgramInfoLog(prog)}`);
    }
    const loc = {};
    for (const n of ["u_coords", "u_act", "u_w", "u_b", "u_inGroups", "u_group", "u_omega", "u_mode"]) {
      loc[n] = gl.getUniformLocation(prog, n);
    }
    return { prog, loc, first };
  }

  _texture2D(internal, format, width, height, data) {
    const gl = this.gl;
    const t = gl.createTexture();
    gl.bindTexture(gl.TEXTURE_2D, t);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, gl.NEAREST);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MAG_FILTER, gl.NEAREST);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_S, gl.CLAMP_TO_EDGE);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_T, gl.CLAMP_TO_EDGE);
    gl.pixelStorei(gl.UNPACK_ALIGNMENT, 1);
    gl.texImage2D(gl.TEXTURE_2D, 0, internal, width, height, 0, format, gl.FLOAT, data);
    return t;
  }

  _activation(w, h, layers) {
    const gl = this.gl;
    if (w > this.maxTexture || h > this.maxTexture) {
      throw new SpnrError(`output ${w}x${h} exceeds the GPU's MAX_TEXTURE_SIZE ${this.maxTexture}`);
    }
    if (layers > this.maxLayers) {
      throw new SpnrError(`${layers * 4} features exceed the GPU's MAX_ARRAY_TEXTURE_LAYERS ${this.maxLayers} x 4`);
    }
    if (w * h * layers * 16 > MAX_ACTIVATION_BYTES) {
      throw new SpnrError(`activations of ${w}x${h}x${layers * 4} floats exceed ${MAX_ACTIVATION_BYTES} bytes`);
    }
    const t = gl.createTexture();
    gl.bindTexture(gl.TEXTURE_2D_ARRAY, t);
    gl.texParameteri(gl.TEXTURE_2D_ARRAY, gl.TEXTURE_MIN_FILTER, gl.NEAREST);
    gl.texParameteri(gl.TEXTURE_2D_ARRAY, gl.TEXTURE_MAG_FILTER, gl.NEAREST);
    gl.texStorage3D(gl.TEXTURE_2D_ARRAY, 1, gl.RGBA32F, w, h, layers);
    return t;
  }

  /** Weight and bias textures of a layer, uploaded once per tensor. */
  _layerTextures(op) {
    let hit = this._weights.get(op.weight);
    if (hit) return hit;
    const gl = this.gl;
    const ig = groups(op.inF);
    const rows = groups(op.outF) * 4;
    if (ig > this.maxTexture || rows > this.maxTexture) {
      throw new SpnrError(`layer of ${op.outF}x${op.inF} exceeds the GPU's MAX_TEXTURE_SIZE ${this.maxTexture}`);
    }
    const wd = new Float32Array(ig * 4 * rows);
    for (let o = 0; o < op.outF; o++) wd.set(op.weight.subarray(o * op.inF, (o + 1) * op.inF), o * ig * 4);
    const bd = new Float32Array(rows);
    bd.set(op.bias);
    hit = {
      w: this._texture2D(gl.RGBA32F, gl.RGBA, ig, rows, wd),
      b: this._texture2D(gl.RGBA32F, gl.RGBA, rows / 4, 1, bd),
    };
    this._weights.set(op.weight, hit);
    return hit;
  }

  /** One layer: input `src` (array texture, or null for coordinates) -> new array texture. */
  _pass(op, src, coordsTex, w, h) {
    const gl = this.gl;
    const first = src === null;
    if (first && op.inF !== 2) throw new SpnrError(`first layer must take 2 inputs, got ${op.inF}`);
    const { prog, loc } = this.programs[first ? 0 : 1];
    const og = groups(op.outF);
    const dst = this._activation(w, h, og);
    const lt = this._layerTextures(op);
    gl.useProgram(prog);
    gl.activeTexture(gl.TEXTURE0);
    if (first) {
      gl.bindTexture(gl.TEXTURE_2D, coordsTex);
      gl.uniform1i(loc.u_coords, 0);
    } else {
      gl.bindTexture(gl.TEXTURE_2D_ARRAY, src);
      gl.uniform1i(loc.u_act, 0);
    }
    gl.activeTexture(gl.TEXTURE1);
    gl.bindTexture(gl.TEXTURE_2D, lt.w);
    gl.uniform1i(loc.u_w, 1);
    gl.activeTexture(gl.TEXTURE2);
    gl.bindTexture(gl.TEXTURE_2D, lt.b);
    gl.uniform1i(loc.u_b, 2);
    gl.uniform1i(loc.u_inGroups, groups(op.inF));
    gl.uniform1f(loc.u_omega, op.omega);
    gl.uniform1i(loc.u_mode, !op.sine ? 0 : op.residual ? 2 : 1);
    if (op.residual && op.inF !== op.outF) throw new SpnrError(`residual layer must keep its width, got ${op.inF} -> ${op.outF}`);
    gl.bindFramebuffer(gl.FRAMEBUFFER, this.fbo);
    gl.viewport(0, 0, w, h);
    gl.bindVertexArray(this.vao);
    for (let g = 0; g < og; g++) {
      gl.framebufferTextureLayer(gl.FRAMEBUFFER, gl.COLOR_ATTACHMENT0, dst, 0, g);
      if (g === 0) {
        const status = gl.checkFramebufferStatus(gl.FRAMEBUFFER);
        if (status !== gl.FRAMEBUFFER_COMPLETE) {
          gl.deleteTexture(dst);
          throw new SpnrError(`float framebuffer incomplete (status ${"0x" + status.toString(16)})`);
        }
      }
      gl.uniform1i(loc.u_group, g);
      gl.drawArrays(gl.TRIANGLES, 0, 3);
    }
    return dst;
  }

  /**
   * Run a forward job (see spnr.js ForwardJob). Sets job.computedSteps.
   * @param {object} job
   * @returns {Float32Array} width * height * 4 floats, rgb first
   */
  run(job) {
    const gl = this.gl;
    if (!gl || this.lost || gl.isContextLost()) throw new SpnrError("WebGL2 context lost");
    const { width: w, height: h, trunk, steps, readout } = job;
    const custom = [...trunk, readout].find((op) => op.apply);
    if (custom) throw new SpnrError(`WebGL2 has no shader for ${custom.kind}`);
    if (trunk.length && trunk[0].pe) throw new SpnrError("the WebGL2 path has no positional encoding yet");
    const owner = job.owner || this;
    const hit = this._cache.get(owner);
    const isPrefix = (a, b) => a.length <= b.length && a.every((k, i) => k === b[i]);
    let done = 0;
    let cur = null;
    if (hit && hit.w === w && hit.h === h && isPrefix(hit.steps, steps)) {
      done = hit.steps.length;
      cur = hit.tex;
    }
    const temps = [];
    let coordsTex = null;
    try {
      if (done === 0) {
        const side = Math.max(w, h);
        const cd = new Float32Array(side * 2);
        cd.set(job.xs || axisCoords(w), 0);
        cd.set(job.ys || axisCoords(h), side);
        coordsTex = this._texture2D(gl.R32F, gl.RED, side, 2, cd);
      }
      for (let i = done; i < trunk.length; i++) {
        const next = this._pass(trunk[i], i === 0 ? null : cur, coordsTex, w, h);
        if (cur !== null && !(hit && cur === hit.tex)) temps.push(cur);
        cur = next;
      }
      const out = this._pass(readout, cur, coordsTex, w, h);
      temps.push(out);
      const pixels = new Float32Array(w * h * 4);
      gl.framebufferTextureLayer(gl.FRAMEBUFFER, gl.COLOR_ATTACHMENT0, out, 0, 0);
      gl.readPixels(0, 0, w, h, gl.RGBA, gl.FLOAT, pixels);
      const err = gl.getError();
      if (err !== gl.NO_ERROR) throw new SpnrError(`WebGL2 error 0x${err.toString(16)} during the forward pass`);
      if (gl.isContextLost()) throw new SpnrError("WebGL2 context lost during the forward pass");
      // Keep the deepest activations for this owner; a shallower request must not evict them.
      const shallower = hit && hit.w === w && hit.h === h && steps.length < hit.steps.length && isPrefix(steps, hit.steps);
      if (cur !== null && !(hit && cur === hit.tex)) {
        if (shallower) {
          temps.push(cur);
        } else {
          if (hit) gl.deleteTexture(hit.tex);
          this._cache.set(owner, { w, h, steps: [...steps], tex: cur });
        }
      }
      job.computedSteps = trunk.length - done;
      return pixels;
    } catch (e) {
      if (cur !== null && !(hit && cur === hit.tex)) temps.push(cur);
      throw e;
    } finally {
      for (const t of temps) gl.deleteTexture(t);
      if (coordsTex) gl.deleteTexture(coordsTex);
      gl.bindFramebuffer(gl.FRAMEBUFFER, null);
    }
  }

  /** Drop the activations cached for one decoder. */
  forget(owner) {
    const hit = this._cache.get(owner);
    if (hit && this.gl) this.gl.deleteTexture(hit.tex);
    this._cache.delete(owner);
  }

  /** Compare a 3-layer pass on a few pixels, with large sine arguments, against applyLayer. */
  _selfTest() {
    const w = 5;
    const h = 3;
    const mk = (outF, inF, scale, seed) => {
      const weight = new Float32Array(outF * inF);
      const bias = new Float32Array(outF);
      let s = seed;
      const rnd = () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32 - 0.5) * 2 * scale;
      for (let i = 0; i < weight.length; i++) weight[i] = rnd();
      for (let i = 0; i < outF; i++) bias[i] = rnd();
      return { weight, bias, inF, outF };
    };
    const ops = [
      { ...mk(6, 2, 1, 1), omega: Math.fround(30), sine: true, residual: false, unit: 0 },
      { ...mk(6, 6, 0.5, 2), omega: Math.fround(30), sine: true, residual: true, unit: 1 },
    ];
    const readout = { ...mk(3, 6, 0.5, 3), omega: 0, sine: false, residual: false, unit: 2 };
    const xs = axisCoords(w);
    const ys = axisCoords(h);
    const owner = {};
    const got = this.run({ width: w, height: h, xs, ys, trunk: ops, steps: [0, 1], readout, owner });
    this.forget(owner);
    let a = new Float32Array(w * h * 2);
    for (let i = 0; i < h; i++) for (let j = 0; j < w; j++) a.set([xs[j], ys[i]], 2 * (i * w + j));
    for (const op of ops) a = applyLayer(op, a, w * h);
    const want = applyLayer(readout, a, w * h);
    for (let p = 0; p < w * h; p++) {
      for (let c = 0; c < 3; c++) {
        const d = Math.abs(got[p * 4 + c] - want[p * 3 + c]);
        if (!(d <= 1e-3)) {
          throw new SpnrError(`WebGL2 self-test failed: pixel ${p} channel ${c} is ${got[p * 4 + c]}, expected ${want[p * 3 + c]}`);
        }
      }
    }
  }

  /** Free every GPU resource; the accelerator cannot be used afterwards. */
  dispose() {
    const gl = this.gl;
    if (gl) {
      const lose = gl.getExtension("WEBGL_lose_context");
      if (lose) lose.loseContext();
    }
    if (this.canvas && this.canvas.removeEventListener) this.canvas.removeEventListener("webglcontextlost", this._onLost);
    this.gl = null;
    this.lost = true;
  }
}
