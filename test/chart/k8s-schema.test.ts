// Every rendered object of every ci/*-values.yaml set (plus the optional objects those sets leave
// out) is valid against the Kubernetes API schemas, and the validator itself rejects broken objects.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { chartDir } from './deps.js';
import { render, type K8sObject } from './helm.js';
import { validateObjects, validateWithModels, validateWithTypes } from './k8s-validate.js';

const ciValues = readdirSync(join(chartDir, 'ci'))
  .filter((f) => f.endsWith('-values.yaml'))
  .sort();

test('the chart has the ci value sets users and ct rely on', () => {
  for (const f of [
    'default-values.yaml',
    'ha-2-values.yaml',
    'ha-4-values.yaml',
    'eu-region-values.yaml',
    'proxy-ca-values.yaml',
    'existing-secret-values.yaml',
    'snyk-github-com-values.yaml',
    'snyk-github-com-ha-values.yaml',
    'snyk-gitlab-values.yaml',
    'snyk-bitbucket-server-values.yaml',
    'snyk-azure-repos-values.yaml',
    'snyk-nexus-values.yaml',
    'snyk-all-keys-values.yaml',
    'commit-signing-values.yaml',
    'universal-values.yaml',
    'universal-ha-values.yaml',
    'snyk-universal-fixture-values.yaml',
    'snyk-universal-all-keys-values.yaml',
  ]) {
    assert.ok(ciValues.includes(f), `charts/ha-broker/ci/${f} is missing`);
  }
});

test('every ci/*-values.yaml renders objects valid against the Kubernetes API schemas', async () => {
  const all: K8sObject[] = [];
  for (const f of ciValues) {
    const objs = await render({ valuesFiles: [`ci/${f}`] });
    assert.ok(objs.length > 0, `${f} rendered nothing`);
    for (const o of objs) {
      o.metadata.annotations = { ...o.metadata.annotations, 'test.ha-broker/values': f };
      all.push(o);
    }
  }
  // Optional objects and branches no ci set turns on: ServiceMonitor, hard anti-affinity,
  // image digest, explicit spread/affinity, extra volumes.
  all.push(
    ...(await render({
      valuesFiles: ['ci/ha-2-values.yaml'],
      set: {
        'serviceMonitor.enabled': true,
        'serviceMonitor.labels.release': 'prometheus',
        podAntiAffinity: 'hard',
        'image.digest': `sha256:${'a'.repeat(64)}`,
        'imagePullSecrets[0].name': 'regcred',
        'nodeSelector.kubernetes\\.io/os': 'linux',
        'tolerations[0].key': 'dedicated',
        'tolerations[0].operator': 'Exists',
        'tolerations[0].effect': 'NoSchedule',
        priorityClassName: 'high',
        'extraVolumes[0].name': 'scratch',
        'extraVolumes[0].emptyDir.medium': 'Memory',
        'extraVolumeMounts[0].name': 'scratch',
        'extraVolumeMounts[0].mountPath': '/scratch',
        'extraEnvFrom[0].secretRef.name': 'scm-credentials',
        'service.type': 'LoadBalancer',
        'service.annotations.example\\.com/lb': 'internal',
        'serviceAccount.annotations.example\\.com/role': 'broker',
        'highAvailabilityMode.dispatcherUrlPrefix': '/hidden/brokers',
        terminationGracePeriodSeconds: 60,
      },
    })),
  );
  const kinds = new Set(all.map((o) => o.kind));
  // snyk-broker-helm's branches no ci set turns on: HTTPS with a chart-made TLS Secret, extra pod and container
  // fields, extra objects, OpenShift security contexts.
  all.push(
    ...(await render({
      valuesFiles: ['ci/snyk-github-com-values.yaml'],
      setString: {
        httpsCert: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----',
        httpsKey: '-----BEGIN PRIVATE KEY-----\nMC4C\n-----END PRIVATE KEY-----',
      },
      set: {
        'extraPodSpecs.hostAliases[0].ip': '10.0.0.1',
        'extraPodSpecs.hostAliases[0].hostnames[0]': 'git.example.internal',
        'extraContainerSpecs.workingDir': '/tmp',
        'extraObjects[0].apiVersion': 'v1',
        'extraObjects[0].kind': 'ConfigMap',
        'extraObjects[0].metadata.name': 'extra',
        'extraObjects[0].data.a': 'b',
        openshift: true,
        'brokerLivenessProbe.enabled': false,
      },
    })),
  );
  for (const k of ['Deployment', 'Service', 'Secret', 'ConfigMap', 'ServiceAccount', 'PodDisruptionBudget', 'ServiceMonitor', 'Pod', 'Ingress']) {
    assert.ok(kinds.has(k), `no ${k} was validated`);
  }
  const errors = await validateObjects(all);
  assert.deepEqual(errors, [], `invalid objects:\n${errors.join('\n')}`);
});

test('the validator rejects broken objects (wrong type, unknown field, missing field, unknown kind)', async () => {
  const good = (await render({ valuesFiles: ['ci/default-values.yaml'] })).find((o) => o.kind === 'Deployment')!;
  assert.deepEqual(await validateObjects([good]), []);

  const wrongType = structuredClone(good);
  wrongType.spec.template.spec.containers[0].ports[0].containerPort = 'seven';
  assert.ok((await validateWithModels([wrongType])).some((e) => /containerPort/.test(e)), 'schema accepted a string port');
  assert.ok(validateWithTypes([wrongType]).some((e) => /string/.test(e)), 'type check accepted a string port');

  const unknownField = structuredClone(good);
  unknownField.spec.template.spec.containers[0].readinesProbe = { httpGet: { path: '/readyz', port: 'http' } };
  const unknownErrors = validateWithTypes([unknownField]);
  assert.ok(unknownErrors.some((e) => /readinesProbe/.test(e)), `misspelt field accepted: ${unknownErrors.join('; ')}`);

  const missing = structuredClone(good);
  delete missing.spec.selector;
  assert.ok((await validateWithModels([missing])).some((e) => /selector/.test(e)), 'schema accepted a Deployment without selector');

  const wrongEnum = structuredClone(good);
  wrongEnum.spec.template.spec.containers[0].ports[0].protocol = 'QUIC';
  assert.ok((await validateObjects([wrongEnum])).length > 0, 'an unknown protocol was accepted');

  const unknownKind: K8sObject = { apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: 'w' } };
  assert.ok((await validateObjects([unknownKind])).length > 0, 'an object without a known schema was accepted');
});
